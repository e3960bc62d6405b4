// Package secret holds tally's credential primitives: Argon2id password
// hashes, random session tokens and API keys, and the hashes under which
// tokens and keys are stored.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters: OWASP's minimum (m = 19 MiB, t = 2, p = 1).
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
)

// PasswordHashMemory is the memory, in bytes, that one HashPassword or
// CheckPassword takes while it runs: what bounds concurrent hashes.
const PasswordHashMemory = argonMemory * 1024

var b64 = base64.RawStdEncoding

// HashPassword returns an encoded Argon2id hash of password (PHC string form).
func HashPassword(password string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// dummyHash is verified against when a login names an unknown email, so
// that unknown emails and wrong passwords take the same time.
var dummyHash = HashPassword("tally-dummy-password")

// CheckPassword reports whether password matches encoded, in constant time.
// With encoded == "" it does the same work against a dummy hash and
// returns false.
func CheckPassword(encoded, password string) bool {
	if encoded == "" {
		checkPassword(dummyHash, password)
		return false
	}
	ok, err := checkPassword(encoded, password)
	return ok && err == nil
}

func checkPassword(encoded, password string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("not an argon2id hash")
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false, err
	}
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil {
		return false, errors.New("bad argon2id encoding")
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// Token returns a random session token with 256 bits of entropy.
func Token() string { return rand.Text() + rand.Text() }

// HashToken returns the stored form of a token or key secret.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// KeyPrefix is how every API key starts.
const KeyPrefix = "tk_"

// NewKey returns a new API key "tk_<id>_<secret>" and its public prefix
// "tk_<id>", which identifies the key in lists and logs.
func NewKey() (key, prefix string) {
	id := strings.ToLower(rand.Text()[:10])
	prefix = KeyPrefix + id
	return prefix + "_" + strings.ToLower(rand.Text()+rand.Text()), prefix
}

// ParseKey splits a presented key into its prefix; ok is false when it is
// not shaped like a tally key.
func ParseKey(key string) (prefix string, ok bool) {
	rest, ok := strings.CutPrefix(key, KeyPrefix)
	if !ok {
		return "", false
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || id == "" || secret == "" {
		return "", false
	}
	return KeyPrefix + id, true
}

// Equal compares two hashes in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
