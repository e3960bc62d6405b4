#!/usr/bin/env bash
# govulncheck over tally's code, against a vulnerability database built
# locally from the golang.org/x/vulndb module (served by the Go module
# proxy), so the check also runs where vuln.go.dev cannot be reached.
#
# It fails on any called vulnerability in a module tally requires. Called
# vulnerabilities in the standard library are fixed by a newer Go patch
# release, not by tally's code: they are listed as a warning.
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"
VULN_VERSION=v1.9.0
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018
db="${TALLY_VULNDB:-${XDG_CACHE_HOME:-$HOME/.cache}/tally/vulndb-$VULNDB_VERSION}"

if [ ! -f "$db/index/db.json" ]; then
	echo "govulncheck: building the vulnerability database ($VULNDB_VERSION) in $db"
	src="$($GO mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
	rm -rf "$db.tmp"
	$GO run "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION" -vulns "$src/data/osv" -out "$db.tmp"
	mv "$db.tmp" "$db"
fi

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
$GO run "golang.org/x/vuln/cmd/govulncheck@$VULN_VERSION" -db "file://$db" -format json ./... >"$out"

# A finding whose trace reaches a function is called by tally's code.
called='select(.finding != null and (.finding.trace[0].function // "") != "") | .finding'
stdlib="$(jq -r "$called | select(.trace[0].module == \"stdlib\") | .osv" "$out" | sort -u)"
modules="$(jq -r "$called | select(.trace[0].module != \"stdlib\") | \"\(.osv) \(.trace[0].module)@\(.trace[0].version)\"" "$out" | sort -u)"
if [ -n "$stdlib" ]; then
	echo "govulncheck: warning: the standard library of $($GO env GOVERSION) has called vulnerabilities fixed in a newer patch release:"
	echo "$stdlib" | sed 's/^/  /'
fi
if [ -n "$modules" ]; then
	echo "govulncheck: called vulnerabilities in required modules:"
	echo "$modules" | sed 's/^/  /'
	exit 1
fi
echo "govulncheck: no called vulnerability in tally's required modules"
