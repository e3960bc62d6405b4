// Package testenv is what a test does when the machine lacks a server or a
// program it needs (PostgreSQL, Redis, Chromium): under CI=true it fails,
// since CI must not pass without it; elsewhere it skips loudly and records
// the skip, so that the test command ends with a summary of what did not
// run and why (go test hides skip messages of passing packages).
package testenv

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// SkipLogEnv names the file skips are appended to; `make test` sets it and
// prints the file's summary when the tests are done.
const SkipLogEnv = "TALLY_TEST_SKIPLOG"

var logMu sync.Mutex

// Missing fails t under CI=true and skips it otherwise, naming what is
// missing (e.g. "PostgreSQL at 127.0.0.1:5432") and why, with how to get
// it. It does not return.
func Missing(t testing.TB, what, reason, fix string) {
	t.Helper()
	msg := fmt.Sprintf("needs %s: %s", what, reason)
	if fix != "" {
		msg += " (" + fix + ")"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true: this test must run in CI; it " + msg)
	}
	record(msg)
	t.Skip("SKIPPING: this test " + msg)
}

// record appends one line, "<package dir>: <msg>", to the skip log.
func record(msg string) {
	path := os.Getenv(SkipLogEnv)
	if path == "" {
		return
	}
	logMu.Lock()
	defer logMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "./%s: %s\n", packageDir(), strings.ReplaceAll(msg, "\n", " "))
}

// packageDir is the test's package directory (go test runs each package in
// its own) relative to the module root.
func packageDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return "?"
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			rel, _ := filepath.Rel(dir, wd)
			return filepath.ToSlash(rel)
		}
		if filepath.Dir(dir) == dir {
			return wd
		}
	}
}

// RedactedURL is u fit for a message: without its password.
func RedactedURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Scheme == "" {
		return "(a URL that does not parse)"
	}
	return p.Redacted()
}

// Buffer is an in-memory io.Writer safe for concurrent use: a sink for the
// logs or output of goroutines a test reads afterwards.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
