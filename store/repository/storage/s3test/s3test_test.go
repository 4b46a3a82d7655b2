package s3test_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backstop/backstop/store/repository/storage/s3test"
)

func TestStart(t *testing.T) {
	s := s3test.Start(t)
	if got, want := s.String(), "s3://"+s3test.Bucket+"/repo"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if err := s.Put(t.Context(), "k", []byte("v"), true); err != nil {
		t.Fatalf("Put() = %v", err)
	}
	got, err := s.Get(t.Context(), "k")
	if err != nil || !bytes.Equal(got, []byte("v")) {
		t.Errorf("Get() = %q, %v, want \"v\"", got, err)
	}
}

func TestMissingBinary(t *testing.T) {
	t.Setenv("BACKSTOP_VERSITYGW", filepath.Join(t.TempDir(), "versitygw"))
	if _, err := s3test.NewServer(); err == nil || !strings.Contains(err.Error(), "BACKSTOP_VERSITYGW") {
		t.Errorf("NewServer() with a missing binary = %v, want an error naming $BACKSTOP_VERSITYGW", err)
	}
}
