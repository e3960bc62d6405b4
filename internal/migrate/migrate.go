// Package migrate is the one migrator of tally's storage backends. Each
// backend keeps its numbered SQL files (NNNN_name.sql) in its own dialect,
// embedded in its package, and gives the migrator a Driver that runs one
// migration in a transaction and records it in schema_migrations; the
// migrator reads the files, works out what is pending and applies it in
// order.
//
// The backends' lists stay in step: the same versions with the same names,
// numbered from 1 without gaps, so that version N means the same change on
// every backend.
package migrate

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Migration is one numbered SQL file.
type Migration struct {
	Version int    // from the file name: 2 for 0002_user_sets.sql
	Name    string // the rest of the file name: "user_sets"
	SQL     string // the file's text, run as one script
}

func (m Migration) String() string { return fmt.Sprintf("%04d_%s", m.Version, m.Name) }

// Driver is what a backend gives the migrator, in its own dialect.
type Driver interface {
	// Applied creates schema_migrations when it is missing and returns
	// the versions recorded in it.
	Applied(ctx context.Context) ([]int, error)
	// Apply runs m.SQL and records m.Version in schema_migrations in one
	// transaction: when it fails, neither the script's changes nor the
	// version remain.
	Apply(ctx context.Context, m Migration) error
}

// List reads the migrations in dir of fsys, ordered by version. Every
// .sql file must be named NNNN_name.sql; the versions must run from 1 with
// neither gaps nor duplicates.
func List(fsys fs.FS, dir string) ([]Migration, error) {
	files, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	list := make([]Migration, 0, len(files))
	for _, file := range files {
		base := path.Base(file)
		num, name, ok := strings.Cut(strings.TrimSuffix(base, ".sql"), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version < 1 || name == "" {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", base)
		}
		body, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, err
		}
		list = append(list, Migration{Version: version, Name: name, SQL: string(body)})
	}
	slices.SortFunc(list, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range list {
		switch {
		case i > 0 && m.Version == list[i-1].Version:
			return nil, fmt.Errorf("migrations %s and %s share a version", list[i-1], m)
		case m.Version != i+1:
			return nil, fmt.Errorf("migration %s: version %d is missing", m, i+1)
		}
	}
	return list, nil
}

// Migrator applies one backend's migrations through its Driver.
type Migrator struct {
	driver     Driver
	migrations []Migration
}

// New returns a migrator of the migrations in dir of fsys (see List).
func New(d Driver, fsys fs.FS, dir string) (*Migrator, error) {
	list, err := List(fsys, dir)
	if err != nil {
		return nil, err
	}
	return &Migrator{driver: d, migrations: list}, nil
}

// Status is a migration and whether the database has applied it.
type Status struct {
	Migration
	Applied bool
}

// Status lists every migration with whether it was applied.
func (m *Migrator) Status(ctx context.Context) ([]Status, error) {
	applied, err := m.driver.Applied(ctx)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	out := make([]Status, len(m.migrations))
	for i, mig := range m.migrations {
		out[i] = Status{Migration: mig, Applied: slices.Contains(applied, mig.Version)}
	}
	return out, nil
}

// Pending lists the migrations not applied yet, ordered by version.
func (m *Migrator) Pending(ctx context.Context) ([]Migration, error) {
	status, err := m.Status(ctx)
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, s := range status {
		if !s.Applied {
			out = append(out, s.Migration)
		}
	}
	return out, nil
}

// Up applies the pending migrations in order, each in its own transaction,
// and returns those it applied. It stops at the first that fails, which
// leaves no trace: that one and those after it stay pending.
func (m *Migrator) Up(ctx context.Context) ([]Migration, error) {
	pending, err := m.Pending(ctx)
	if err != nil {
		return nil, err
	}
	for i, mig := range pending {
		if err := m.driver.Apply(ctx, mig); err != nil {
			return pending[:i], fmt.Errorf("migration %s: %w", mig, err)
		}
	}
	return pending, nil
}
