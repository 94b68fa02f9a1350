#!/bin/sh
# Stands in for a secrets-manager CLI (e.g. 'pass show sendgrid/api-key') in the example
# catalog's command source: prints the value on standard output. A fake value, never real.
# Command sources run with PATH, HOME, LANG and LC_* only, so a real CLI finds its own
# configuration under HOME, not in variables of the bootstrap's environment.
printf '%s\n' demo-sendgrid-api-key
