package clickhouse

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tallyhq/tally"
)

// client talks to one ClickHouse server over its HTTP interface: SQL in
// the URL or the body, rows in RowBinary both ways. Nothing of ClickHouse's
// native protocol; every version since 1.1 speaks this.
type client struct {
	base     string // http://host:port/
	database string
	http     *http.Client
	timeout  time.Duration // one statement; also max_execution_time
}

func newClient(base, database string, timeout time.Duration) *client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     2 * time.Second, // below the server's keep_alive_timeout (3 s by default): never reuse a connection it closed
		DisableCompression:  true,
	}
	return &client{base: base, database: database, http: &http.Client{Transport: tr}, timeout: timeout}
}

// request sends sql (with body, when not nil, as the INSERT's data) and
// returns the answer's body for the caller to read and close. database is
// the database to run in ("" for none: CREATE DATABASE). stream lifts the
// statement timeout (an export reads as fast as its client).
func (c *client) request(ctx context.Context, database, sql string, body io.Reader, stream bool) (io.ReadCloser, error) {
	q := url.Values{}
	if database != "" {
		q.Set("database", database)
	}
	var cancel context.CancelFunc = func() {}
	if !stream {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		q.Set("max_execution_time", strconv.Itoa(max(1, int(c.timeout.Seconds()))))
	}
	var req *http.Request
	var err error
	if body != nil {
		q.Set("query", sql)
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.base+"?"+q.Encode(), body)
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, c.base+"?"+q.Encode(), strings.NewReader(sql))
	}
	if err != nil {
		cancel()
		return nil, tally.Internal(err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		cancel()
		return nil, classify(err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		cancel()
		return nil, serverError(resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return &cancelBody{ReadCloser: resp.Body, cancel: cancel}, nil
}

// exec runs a statement that answers nothing of interest.
func (c *client) exec(ctx context.Context, database, sql string) error {
	rc, err := c.request(ctx, database, sql, nil, false)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	return classify(err)
}

// insert sends an INSERT with its RowBinary data.
func (c *client) insert(ctx context.Context, sql string, data []byte) error {
	rc, err := c.request(ctx, c.database, sql+" FORMAT RowBinary", strings.NewReader(string(data)), false)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	return classify(err)
}

// query runs a SELECT and calls fn for each row, read from r, until the
// answer ends.
func (c *client) query(ctx context.Context, sql string, stream bool, fn func(r *rowReader) error) error {
	rc, err := c.request(ctx, c.database, sql+" FORMAT RowBinary", nil, stream)
	if err != nil {
		return err
	}
	defer rc.Close()
	r := &rowReader{r: bufio.NewReaderSize(rc, 64<<10)}
	for {
		if _, err := r.r.Peek(1); err == io.EOF {
			return nil
		} else if err != nil {
			return classify(err)
		}
		if err := fn(r); err != nil {
			return err
		}
		if r.err != nil {
			return classify(r.err)
		}
	}
}

// cancelBody releases the request's context with its body.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// classify turns a transport failure into tally's errors: whatever a
// retry may get past (refused, reset, timed out) is tally.Unavailable.
func classify(err error) error {
	var te *tally.Error
	var ne net.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &te):
		return err
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		u := tally.Unavailable(err)
		u.Message = "the event store timed out; retry later"
		return u
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, io.EOF), errors.As(err, &ne):
		u := tally.Unavailable(err)
		u.Message = "the event store is unreachable; retry later"
		return u
	}
	return tally.Internal(err)
}

// serverError is ClickHouse's answer to a failed statement. The codes a
// retry may get past are the server's overload and timeouts: 159
// TIMEOUT_EXCEEDED, 202 TOO_MANY_SIMULTANEOUS_QUERIES, 252 TOO_MANY_PARTS,
// 241 MEMORY_LIMIT_EXCEEDED, 209/210 socket timeout and network errors.
func serverError(status int, msg string) error {
	err := fmt.Errorf("clickhouse: HTTP %d: %s", status, msg)
	for _, code := range []string{"Code: 159,", "Code: 202,", "Code: 252,", "Code: 241,", "Code: 209,", "Code: 210,"} {
		if strings.HasPrefix(msg, code) {
			u := tally.Unavailable(err)
			u.Message = "the event store is busy; retry later"
			return u
		}
	}
	if status == http.StatusServiceUnavailable {
		return tally.Unavailable(err)
	}
	return tally.Internal(err)
}

// rowReader decodes RowBinary values; the first error sticks.
type rowReader struct {
	r   *bufio.Reader
	buf [8]byte
	err error
}

func (r *rowReader) fixed() []byte {
	if r.err != nil {
		return r.buf[:]
	}
	if _, err := io.ReadFull(r.r, r.buf[:]); err != nil {
		r.err = unexpected(err)
	}
	return r.buf[:]
}

func (r *rowReader) int64() int64   { return int64(binary.LittleEndian.Uint64(r.fixed())) }
func (r *rowReader) uint64() uint64 { return binary.LittleEndian.Uint64(r.fixed()) }
func (r *rowReader) float64() float64 {
	return math.Float64frombits(binary.LittleEndian.Uint64(r.fixed()))
}

// bytes reads a String into dst's storage.
func (r *rowReader) bytes(dst []byte) []byte {
	if r.err != nil {
		return dst[:0]
	}
	n, err := binary.ReadUvarint(r.r)
	if err != nil {
		r.err = unexpected(err)
		return dst[:0]
	}
	if n > 1<<30 {
		r.err = errors.New("clickhouse: string longer than 1 GiB in an answer")
		return dst[:0]
	}
	if uint64(cap(dst)) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	if _, err := io.ReadFull(r.r, dst); err != nil {
		r.err = unexpected(err)
	}
	return dst
}

func (r *rowReader) string() string { return string(r.bytes(nil)) }

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// rowWriter encodes RowBinary values.
type rowWriter struct{ b []byte }

func (w *rowWriter) int64(v int64) { w.b = binary.LittleEndian.AppendUint64(w.b, uint64(v)) }
func (w *rowWriter) float64(v float64) {
	w.b = binary.LittleEndian.AppendUint64(w.b, math.Float64bits(v))
}
func (w *rowWriter) string(s string) {
	w.b = binary.AppendUvarint(w.b, uint64(len(s)))
	w.b = append(w.b, s...)
}

// quote renders s as a ClickHouse string literal that holds its bytes
// exactly: printable ASCII as is (but ' and \), every other byte as \xHH.
// ClickHouse 18.16 has no query parameters, so values go into the SQL
// text only this way (and integers by strconv).
func quote(s string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// micros is t as the events table stores it: microseconds since the Unix
// epoch.
func micros(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// fromMicros is the time of a stored timestamp, in UTC.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }
