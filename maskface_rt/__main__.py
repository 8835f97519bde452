from maskface_rt.cli import main

main()
