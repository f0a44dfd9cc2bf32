"""`python -m meshsim ...`: the same command line as the `meshsim` script."""

from meshsim.entry import main

main()
