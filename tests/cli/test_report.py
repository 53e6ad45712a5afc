from superconverge.cli.main import main


def test_a_folder_without_a_run_is_one_line_naming_the_missing_files(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "is not a tune run folder" in error and "plan.json" in error
