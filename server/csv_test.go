package server

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
)

func TestCSVCell(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":              "",
		"plain":         "plain",
		"=1+1":          "'=1+1",
		"+cmd":          "'+cmd",
		"-2":            "'-2",
		"@SUM(A1)":      "'@SUM(A1)",
		"\tx":           "'\tx",
		"\rx":           "'\rx",
		"a=b":           "a=b",
		`{"k":"=evil"}`: `{"k":"=evil"}`,
	} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzCSVCell checks that any cell, once neutralised and written by
// encoding/csv, reads back as one cell equal to the neutralised text that
// a spreadsheet would not run as a formula.
func FuzzCSVCell(f *testing.F) {
	for _, s := range []string{"", "=1", "+1", "-1", "@x", "\t", "\r\n", `"q"`, "a,b", "a\nb", "é=", "'="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cell := csvCell(s)
		if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
			t.Fatalf("csvCell(%q) = %q still starts with a formula character", s, cell)
		}
		if cell != s && cell != "'"+s {
			t.Fatalf("csvCell(%q) = %q changed more than a leading quote", s, cell)
		}
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		if err := w.Write([]string{cell, "next"}); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		r := csv.NewReader(&buf)
		rec, err := r.Read()
		if err != nil {
			t.Fatalf("reading back %q: %v", buf.String(), err)
		}
		// encoding/csv normalises \r\n inside quoted fields to \n.
		want := strings.ReplaceAll(cell, "\r\n", "\n")
		if len(rec) != 2 || (rec[0] != want && !strings.Contains(cell, "\r")) || rec[1] != "next" {
			t.Fatalf("round trip of %q gave %q", cell, rec)
		}
	})
}
