from embhub.cli import main

main()
