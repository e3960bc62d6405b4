package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const usageText = `tally: multi-tenant analytics and usage tracking

usage: tally <command> [flags]

commands:
  serve      run the HTTP server (flags: -listen, -database, -demo, -dev)
  migrate    apply database migrations and exit
  rollup     run the rollup for a range of days (-from, -to, -tenant)
  user       create a user or set a password (user create|passwd)
  tenant     create a tenant (tenant create)
  key        create an API key (key create)
  meter      list, create, delete or query a tenant's meters (meter list|create|delete|query)
  bench      load-test a running server (see tally bench -h)
  version    print the version

Configuration comes from the environment (see README.md); flags override it.
`

// run is the whole program: main only calls it. It reads configuration
// through getenv and writes only to stdout and stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return &configError{msg: "no command given"}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case "rollup":
		return runRollup(ctx, rest, getenv, stdout, stderr)
	case "user":
		return runUser(ctx, rest, getenv, stdout, stderr)
	case "tenant":
		return runTenant(ctx, rest, getenv, stdout, stderr)
	case "key":
		return runKey(ctx, rest, getenv, stdout, stderr)
	case "meter":
		return runMeter(ctx, rest, getenv, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, getenv, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "tally", buildVersion())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	fmt.Fprint(stderr, usageText)
	return &configError{msg: fmt.Sprintf("unknown command %q", cmd)}
}

// buildVersion is the version of this binary: the -ldflags version when
// set (make build sets it from git describe), else the module version, then
// the VCS revision, its time and "modified" for a dirty tree, as the Go
// toolchain embedded them (runtime/debug.ReadBuildInfo).
func buildVersion() string {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(version, bi)
}

func versionOf(ldflags string, bi *debug.BuildInfo) string {
	v := ldflags
	var rev, at string
	modified := false
	if bi != nil {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	parts := []string{v}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		parts = append(parts, "revision "+rev)
	}
	if at != "" {
		parts = append(parts, at)
	}
	if modified {
		parts = append(parts, "modified")
	}
	return strings.Join(parts, " ")
}
