"""Was it reproducible? ``volcano-gif verify`` and ``volcano-gif reproduce``: a past run's
archive checked against its record, and its frames rendered again and compared."""
