package faults_test

import (
	"bytes"
	"database/sql"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/internal/app/apptest"
	"github.com/tallyhq/tally/internal/testenv"
	_ "modernc.org/sqlite"
)

// TestSQLiteDiskFull puts the SQLite database on a small tmpfs and fills
// it: ingest answers 503 with Retry-After, /readiness answers 503 naming
// database_writes; once the space is freed, ingest works again without a
// restart and every acknowledged event is stored exactly once.
func TestSQLiteDiskFull(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		testenv.Missing(t, "a small tmpfs for the disk-full test", strings.TrimSpace(string(out))+" "+err.Error(), "run the test as root (mount -t tmpfs)")
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	dbPath := filepath.Join(dir, "tally.db")
	_, srv := apptest.Start(t, func(cfg *app.Config) { cfg.SQLitePath = dbPath })
	c := &client{t: t, srv: srv, key: apptest.Key(t, srv, "diskfull", "analytics:write"),
		http: &http.Client{Timeout: 30 * time.Second}, acked: map[string]bool{}, codes: map[int]int{}}
	if code, err := c.send("before"); err != nil || code/100 != 2 {
		t.Fatalf("before the disk fills: ingest %d %v", code, err)
	}

	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{'x'}, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	// Fill the last partial block too.
	for {
		if _, err := f.Write(chunk[:512]); err != nil {
			break
		}
	}
	f.Close()

	got503 := false
	for i := 0; i < 200 && !got503; i++ {
		code, err := c.send("full")
		if err != nil {
			t.Fatal(err)
		}
		got503 = code == http.StatusServiceUnavailable
	}
	if !got503 {
		t.Fatal("ingest never answered 503 on a full disk")
	}
	res, err := http.Get(srv.URL + "/readiness")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "database_writes") {
		t.Errorf("/readiness on a full disk: %d %s; want 503 naming database_writes", res.StatusCode, body)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, err := c.send("after")
		if err == nil && code/100 == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("space freed: ingest still %d %v after 30s", code, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if res, err := http.Get(srv.URL + "/readiness"); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("/readiness after space freed: %v %v", res.StatusCode, err)
	} else {
		res.Body.Close()
	}
	t.Logf("answers: %v, acknowledged events: %d", c.codes, len(c.acked))

	db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT event_id, count(*) FROM events WHERE event = 'fault.test' GROUP BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	stored := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		stored[id] = n
	}
	for id, n := range stored {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	for id := range c.acked {
		if stored[id] == 0 {
			t.Errorf("acknowledged event %s is not stored", id)
		}
	}
}
