package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/backstop/backstop/jobs/pg/pgtest"
	"github.com/backstop/backstop/store/repository/storage/s3test"
)

// shared is the small cluster the CLI tests register and back up.
var shared = pgtest.NewShared()

// binDir holds the backstop binary built for the tests that run it as a process.
var binDir string

func TestMain(m *testing.M) {
	// The key comes from the home's key file in these tests, never from the environment.
	os.Unsetenv(keyEnv)
	os.Unsetenv("BACKSTOP_HOME")
	var err error
	binDir, err = os.MkdirTemp("", "backstop-bin-")
	if err == nil {
		// restore_command runs the binary as the server's OS user.
		err = os.Chmod(binDir, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Getenv("BACKSTOP_TEST_STORAGE") == "s3" {
		// Every home the tests make keeps its repository in one versitygw, each below a
		// prefix of its own; the commands find the credentials in the environment.
		if s3srv, err = s3test.NewServer(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Setenv("AWS_ACCESS_KEY_ID", s3srv.Access)
		os.Setenv("AWS_SECRET_ACCESS_KEY", s3srv.Secret)
	}
	code := m.Run()
	shared.Close()
	if s3srv != nil {
		s3srv.Close()
	}
	os.RemoveAll(binDir)
	os.Exit(code)
}

// s3srv holds the tests' repositories when BACKSTOP_TEST_STORAGE=s3 (make test runs this
// package both ways); nil for repositories in the homes.
var s3srv *s3test.Server

// withStorage adds, on S3, the repository flags to an init that has none.
func withStorage(args []string) []string {
	if s3srv == nil || len(args) == 0 || args[0] != "init" || slices.Contains(args, "--repository") {
		return args
	}
	return append(slices.Clone(args), "--repository", "s3://"+s3srv.Bucket+"/"+strings.ToLower(rand.Text()),
		"--s3-endpoint", s3srv.Endpoint, "--s3-path-style")
}

var (
	buildOnce sync.Once
	buildErr  error
)

// binary builds the backstop command once and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	path := filepath.Join(binDir, "backstop")
	buildOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return path
}

// syncBuffer is a buffer that several goroutines may write: the CLI writes stderr from the
// progress bar's own goroutine, its logger and the job's.
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

// backstop runs the CLI in-process, as main does, with home as --home.
func backstop(t *testing.T, home string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out, errOut syncBuffer
	err = run(ctx, append([]string{"--home", home}, withStorage(args)...), strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

// mustBackstop runs the CLI in-process and fails the test if the command fails.
func mustBackstop(t *testing.T, home string, args ...string) string {
	t.Helper()
	stdout, stderr, err := backstop(t, home, args...)
	if err != nil {
		t.Fatalf("backstop %s = %v\nstderr:\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout
}

// command returns the built binary, ready to run with home as --home.
func command(t *testing.T, home string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"--home", home}, withStorage(args)...)...)
	cmd.Env = os.Environ()
	return cmd
}

// runBinary runs the built binary to its end and returns its output and exit code.
func runBinary(t *testing.T, home string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := command(t, home, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("run backstop %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// lastID parses the last line of a command's output as the ID it prints there.
func lastID(t *testing.T, what, stdout string) int64 {
	t.Helper()
	id, err := strconv.ParseInt(lastLine(stdout), 10, 64)
	if err != nil || id <= 0 {
		t.Fatalf("%s: last line of stdout = %q, want an ID\nstdout:\n%s", what, lastLine(stdout), stdout)
	}
	return id
}

// execSQL runs statements on dsn in one session.
func execSQL(t *testing.T, dsn string, sql ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	for _, q := range sql {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("Exec(%.60q) = %v", q, err)
		}
	}
}

// queryInt returns the single integer value of sql.
func queryInt(t *testing.T, dsn, sql string, args ...any) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return n
}
