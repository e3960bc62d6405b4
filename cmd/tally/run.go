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
  migrate-events copy a tenant's events from PostgreSQL to the ClickHouse event log (-tenant; resumable)
  user       users: user create|passwd|list|delete-events
  tenant     tenants: tenant list|create|show|update
  member     a tenant's members: member list|add|remove|role
  key        API keys: key list|create|revoke
  invite     invitations: invite create|list|revoke|accept
  quota      daily quotas: quota list|set|delete
  meter      a tenant's meters: meter list|create|delete|query
  audit      the audit log: audit list [-action A] [-actor A]
  events     follow a running tally's events live: events tail -key KEY [-event E]
  bench      load-test a running server, build a dataset, or time meter queries on one (see tally bench -h)
  version    print the version

Admin commands print tables, or JSON with -json; "tally <command>" lists its
subcommands, "tally <command> <sub> -h" their flags.
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
	case "migrate-events":
		return runMigrateEvents(ctx, rest, getenv, stdout, stderr)
	case "user":
		return runGroup(ctx, cmd, userCmds, rest, getenv, stdout, stderr)
	case "tenant":
		return runGroup(ctx, cmd, tenantCmds, rest, getenv, stdout, stderr)
	case "member":
		return runGroup(ctx, cmd, memberCmds, rest, getenv, stdout, stderr)
	case "key":
		return runGroup(ctx, cmd, keyCmds, rest, getenv, stdout, stderr)
	case "invite":
		return runInvite(ctx, rest, getenv, stdout, stderr)
	case "quota":
		return runGroup(ctx, cmd, quotaCmds, rest, getenv, stdout, stderr)
	case "meter":
		return runMeter(ctx, rest, getenv, stdout, stderr)
	case "audit":
		return runGroup(ctx, cmd, auditCmds, rest, getenv, stdout, stderr)
	case "events":
		return runEvents(ctx, rest, getenv, stdout, stderr)
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
