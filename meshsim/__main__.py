"""`python -m meshsim ...`: the same command line as the `meshsim` script."""

from meshsim.cli import main

main(prog_name="meshsim")
