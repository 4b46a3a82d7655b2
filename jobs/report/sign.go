package report

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// KeyFile is the name of the installation's report signing key in Backstop's home.
const KeyFile = "report-signing.key"

// LoadOrCreateKey reads the Ed25519 private key at path (PEM, PKCS #8), first writing a
// new one there (mode 0600) if there is none. An existing file is never overwritten.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("report key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("report key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return readKey(path)
	case err != nil:
		return nil, fmt.Errorf("report key: %w", err)
	}
	err = pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("report key: %w", err)
	}
	return priv, nil
}

func readKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("report key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("report key: %s holds no PEM private key: move it away and a new key is made", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("report key: %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("report key: %s holds a %T, not an Ed25519 key", path, k)
	}
	return priv, nil
}

// PublicKeyPEM returns pub as a PEM "PUBLIC KEY" block (PKIX), the form `openssl pkey
// -pubin` and `backstop report verify --key` read.
func PublicKeyPEM(pub ed25519.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err) // an Ed25519 key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKey reads a public key in the form PublicKeyPEM writes.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM public key (want a -----BEGIN PUBLIC KEY----- block, as /reports/key.pub serves)")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is a %T, not Ed25519", k)
	}
	return pub, nil
}

// Fingerprint names pub for people to compare: "SHA256:" and the unpadded base64 of the
// SHA-256 of the raw 32-byte key.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// message is what a signature covers: the format's name and the signed bytes, so that a
// signature of one format is no signature of another.
func message(format string, payload []byte) []byte {
	return append([]byte(FormatVersion+" "+format+"\n"), payload...)
}

// b64 is the strict standard base64 of signatures and keys: one encoding per value.
var b64 = base64.StdEncoding.Strict()

// trailerWord starts the signature line that ends a CSV or PDF report.
const trailerWord = "backstop-signature Ed25519 "

// trailer is the last line of a signed CSV ("#") or PDF ("%") report.
func trailer(prefix string, pub ed25519.PublicKey, sig []byte) []byte {
	return []byte(prefix + trailerWord + b64.EncodeToString(pub) + " " + b64.EncodeToString(sig) + "\n")
}

// signTrailer returns payload followed by its signature line.
func signTrailer(key ed25519.PrivateKey, format, prefix string, payload []byte) []byte {
	sig := ed25519.Sign(key, message(format, payload))
	return append(payload, trailer(prefix, key.Public().(ed25519.PublicKey), sig)...)
}

// splitTrailer splits a signed CSV or PDF file into its payload, key and signature, and
// checks the signature. The line must read exactly as trailer writes it.
func splitTrailer(data []byte, format, prefix string) ([]byte, ed25519.PublicKey, error) {
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return nil, nil, errors.New("the file does not end with a signature line")
	}
	i := bytes.LastIndexByte(data[:len(data)-1], '\n') + 1
	payload, line := data[:i], string(data[i:])
	rest, ok := bytes.CutPrefix([]byte(line), []byte(prefix+trailerWord))
	if !ok {
		return nil, nil, errors.New("the last line is not a Backstop signature")
	}
	parts := bytes.Fields(rest)
	if len(parts) != 2 {
		return nil, nil, errors.New("the signature line is malformed")
	}
	pub, err1 := b64.DecodeString(string(parts[0]))
	sig, err2 := b64.DecodeString(string(parts[1]))
	if err1 != nil || err2 != nil || len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize ||
		string(trailer(prefix, pub, sig)) != line {
		return nil, nil, errors.New("the signature line is malformed")
	}
	if !ed25519.Verify(pub, message(format, payload), sig) {
		return nil, nil, ErrBadSignature
	}
	return payload, pub, nil
}

// ErrBadSignature is a report whose signature does not match its content: it was changed
// after it was signed, or signed by someone else.
var ErrBadSignature = errors.New("the signature does not match the content: the report was changed after it was signed")
