// Package s3test runs a real S3 server for tests: versitygw with its POSIX backend in a
// temporary directory, listening on 127.0.0.1. `./.ci/deps versitygw` (which `make test`
// runs) builds it into the repository's .tools/bin; $BACKSTOP_VERSITYGW names another
// binary.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/backstop/backstop/store/repository/storage"
)

const (
	// Bucket is the bucket StartServer creates.
	Bucket = "backstop-test"
	region = "us-east-1"

	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// Start starts a server, stopped when the test ends, and returns a storage in its bucket
// below the prefix "repo".
func Start(t testing.TB) *storage.S3 {
	t.Helper()
	endpoint, access, secret, bucket := StartServer(t)
	s, err := storage.NewS3(t.Context(), Config(endpoint, access, secret, bucket, "repo"))
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	return s
}

// StartServer starts a server with an empty bucket, stopped when the test ends, and
// returns its URL (http://127.0.0.1:PORT, path-style), root credentials and the bucket.
func StartServer(t testing.TB) (endpoint, access, secret, bucket string) {
	t.Helper()
	srv, err := NewServer()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("s3test: %v", err)
		}
	})
	return srv.Endpoint, srv.Access, srv.Secret, srv.Bucket
}

// Config is the storage configuration for prefix in a server's bucket.
func Config(endpoint, access, secret, bucket, prefix string) storage.S3Config {
	return storage.S3Config{
		Bucket:    bucket,
		Prefix:    prefix,
		Endpoint:  endpoint,
		Region:    region,
		AccessKey: access,
		SecretKey: secret,
		PathStyle: true,
	}
}

// Server is a running versitygw with an empty bucket, for tests that share one server
// (started lazily, closed by TestMain). Most tests call Start or StartServer instead.
type Server struct {
	// Endpoint is the server's URL, http://127.0.0.1:PORT; buckets are addressed
	// path-style.
	Endpoint string
	// Access and Secret are the root user's keys.
	Access, Secret string
	// Bucket is the bucket created at start.
	Bucket string

	root string
	proc *process
}

// NewServer starts a server. The caller must Close it.
func NewServer() (_ *Server, err error) {
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "backstop-versitygw-*")
	if err != nil {
		return nil, err
	}
	s := &Server{Access: "backstop-" + rand.Text()[:8], Secret: rand.Text(), Bucket: Bucket, root: root}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	// A free port can be taken by someone else before the server binds it: try again.
	var notReady error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.Endpoint = "http://127.0.0.1:" + port
		proc, err := start(bin, root, "127.0.0.1:"+port, s.Access, s.Secret)
		if err != nil {
			return nil, err
		}
		if notReady = proc.waitReady(s.Endpoint); notReady == nil {
			s.proc = proc
			break
		}
		proc.stop()
	}
	if notReady != nil {
		return nil, notReady
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := createBucket(ctx, s.Endpoint, s.Access, s.Secret, s.Bucket); err != nil {
		return nil, fmt.Errorf("create bucket: %w", err)
	}
	return s, nil
}

// Close stops the server and removes its files.
func (s *Server) Close() error {
	var err error
	if s.proc != nil {
		err = s.proc.stop()
	}
	return errors.Join(err, os.RemoveAll(s.root))
}

// binary finds versitygw: $BACKSTOP_VERSITYGW, else .tools/bin/versitygw in the module
// that holds the working directory.
func binary() (string, error) {
	const hint = "run ./.ci/deps versitygw (make test does)"
	if p := os.Getenv("BACKSTOP_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$BACKSTOP_VERSITYGW: %w", err)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory to find .tools/bin/versitygw in: %s, or set $BACKSTOP_VERSITYGW", hint)
		}
		dir = parent
	}
	p := filepath.Join(dir, ".tools", "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("versitygw is not installed (%w): %s", err, hint)
	}
	return p, nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

// process is a running versitygw; output holds what it printed.
type process struct {
	cmd    *exec.Cmd
	output *syncBuffer
	exited chan struct{} // closed when the process has exited; then err is set
	err    error
}

func start(bin, root, addr, access, secret string) (*process, error) {
	// Not CommandContext with the test's context: that is cancelled before the test's
	// cleanups run, and those may still use the server.
	cmd := exec.Command(bin, "--access", access, "--secret", secret, "--port", addr, "--quiet",
		"posix", root)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	s := &process{cmd: cmd, output: out, exited: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

// waitReady waits until the server answers HTTP on endpoint (any status will do: an
// unsigned request is refused).
func (s *process) waitReady(endpoint string) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := client.Get(endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("versitygw exited at start (%v): %s", s.err, s.output)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw did not answer on %s within %v: %v; output: %s", endpoint, startTimeout, err, s.output)
		}
	}
}

// stop ends the server with SIGTERM, then SIGKILL.
func (s *process) stop() error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-s.exited:
		return nil
	case <-time.After(stopTimeout):
	}
	s.cmd.Process.Kill()
	<-s.exited
	return fmt.Errorf("versitygw did not stop within %v of SIGTERM; killed; output: %s", stopTimeout, s.output)
}

func createBucket(ctx context.Context, endpoint, access, secret, bucket string) error {
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint),
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
		UsePathStyle: true,
	})
	_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	return err
}

// syncBuffer is a bytes.Buffer that the process's output goroutines and the test can
// use at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
