from refute.cli import main

main()
