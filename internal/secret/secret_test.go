package secret

import (
	"strings"
	"testing"
)

func TestPassword(t *testing.T) {
	t.Parallel()
	h := HashPassword("correct horse battery")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not Argon2id with OWASP parameters", h)
	}
	if h == HashPassword("correct horse battery") {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	if !CheckPassword(h, "correct horse battery") {
		t.Fatal("the right password does not check")
	}
	for _, bad := range []string{"", "correct horse batter", "Correct horse battery"} {
		if CheckPassword(h, bad) {
			t.Errorf("CheckPassword accepted %q", bad)
		}
	}
	if CheckPassword("", "anything") || CheckPassword("$bcrypt$junk", "anything") {
		t.Fatal("CheckPassword accepted a missing or foreign hash")
	}
}

func TestTokensAndKeys(t *testing.T) {
	t.Parallel()
	a, b := Token(), Token()
	if a == b || len(a) < 32 {
		t.Fatalf("tokens %q %q: want distinct and >= 128 bits", a, b)
	}
	key, prefix := NewKey()
	if !strings.HasPrefix(key, prefix+"_") || !strings.HasPrefix(prefix, KeyPrefix) {
		t.Fatalf("key %q does not start with its prefix %q", key, prefix)
	}
	if got, ok := ParseKey(key); !ok || got != prefix {
		t.Fatalf("ParseKey(%q) = %q, %v", key, got, ok)
	}
	for _, bad := range []string{"", "tk_", "tk_abc", "tk__secret", "tk_abc_", "xx_abc_secret", "session-token"} {
		if _, ok := ParseKey(bad); ok {
			t.Errorf("ParseKey accepted %q", bad)
		}
	}
	if !Equal(HashToken(key), HashToken(key)) || Equal(HashToken(key), HashToken(key+"x")) {
		t.Fatal("HashToken/Equal disagree")
	}
}
