"""Which tests run and in what order: --lf/--ff, --nf, --sw, and their xdist glue."""
