from cozy.cli.app import main

main()
