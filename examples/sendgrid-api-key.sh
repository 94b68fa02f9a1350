#!/bin/sh
# Stands in for a secrets-manager CLI (e.g. 'pass show sendgrid/api-key') in the example
# catalog's command source: prints the value on standard output. A fake value, never real.
# Command sources run with PATH=/usr/bin:/bin, HOME (of the user they run as: nobody when
# the bootstrap runs as root), LANG and LC_* only, never variables of the bootstrap's
# environment: a real CLI finds its configuration in files this script points it at.
printf '%s\n' demo-sendgrid-api-key
