package usage_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/tallyhq/tally/usage"
)

func TestPublicAddr(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true, "127.0.0.1": false, "::1": false, "10.1.2.3": false,
		"172.16.0.1": false, "192.168.1.1": false, "169.254.169.254": false, "100.64.0.1": false,
		"0.0.0.0": false, "224.0.0.1": false, "::ffff:127.0.0.1": false, "fd00::1": false, "fe80::1": false,
	} {
		if got := usage.PublicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("PublicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

// TestPublicWebhookClientRefusesLoopback checks the guard on a real
// connection attempt to a real server on loopback.
func TestPublicWebhookClientRefusesLoopback(t *testing.T) {
	t.Parallel()
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit = true }))
	defer srv.Close()
	_, err := usage.PublicWebhookClient(5*time.Second).Post(srv.URL, "application/json", nil)
	if !errors.Is(err, usage.ErrPrivateAddress) {
		t.Fatalf("POST to %s: err = %v, want ErrPrivateAddress", srv.URL, err)
	}
	if hit {
		t.Fatal("the loopback server was reached")
	}
}
