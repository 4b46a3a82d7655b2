package usecase

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MetricsTokenFile is the file, in Backstop's home, holding the bearer token with which a
// Prometheus server reads /metrics without signing in.
const MetricsTokenFile = "metrics.token"

// minMetricsToken is the shortest token accepted: a shorter (or empty) file lets nobody in.
const minMetricsToken = 16

// ErrUnauthenticated is a request that neither comes from a signed-in user nor presents a
// valid token.
var ErrUnauthenticated = errors.New("sign in, or present the metrics token as a bearer token")

// MetricsTokenPath returns the path of the metrics token file, first writing a new random
// token into it (mode 0600) if it does not exist. Replacing the file's content changes
// the token at once: it is read on every request.
func (s *Service) MetricsTokenPath() (string, error) {
	if s.paths.Home == "" {
		return "", errors.New("metrics token: no home directory")
	}
	path := filepath.Join(s.paths.Home, MetricsTokenFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return path, nil
	}
	if err != nil {
		return "", fmt.Errorf("metrics token: %w", err)
	}
	b := make([]byte, 32)
	rand.Read(b)
	_, err = f.WriteString(base64.RawURLEncoding.EncodeToString(b) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("metrics token: %w", err)
	}
	return path, nil
}

// AuthorizeMetrics lets a read of /metrics through for a request bearing the metrics token
// (compared in constant time), or else for a signed-in actor whose role may ReadMetrics.
// A wrong token, or neither a token nor a signed-in actor (a.Name ""), is
// ErrUnauthenticated.
func (s *Service) AuthorizeMetrics(a Actor, bearer string) error {
	if bearer != "" {
		if !s.metricsTokenMatches(bearer) {
			return ErrUnauthenticated
		}
		return nil
	}
	if a.Name == "" {
		return ErrUnauthenticated
	}
	return Authorize(a, ReadMetrics)
}

// metricsTokenMatches reports whether token is the one in the token file. Both sides are
// hashed first, so that the comparison takes the same time whatever their lengths.
func (s *Service) metricsTokenMatches(token string) bool {
	if s.paths.Home == "" {
		return false
	}
	b, err := os.ReadFile(filepath.Join(s.paths.Home, MetricsTokenFile))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("metrics token", "err", err)
		}
		return false
	}
	want := strings.TrimSpace(string(b))
	if len(want) < minMetricsToken {
		return false
	}
	x, y := sha256.Sum256([]byte(want)), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1
}
