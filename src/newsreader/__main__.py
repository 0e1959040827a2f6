from newsreader.cli import main

main(prog_name="newsreader")
