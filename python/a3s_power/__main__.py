from a3s_power.cli import main

main()
