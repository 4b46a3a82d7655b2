package pg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Binaries locates the server programs (initdb, pg_ctl, postgres,
// pg_verifybackup, ...) of one PostgreSQL major version.
type Binaries struct {
	// Dir is the directory that holds the programs.
	Dir string
	// Major is the major version of the programs, such as 15.
	Major int
}

// Path returns the path of the program name in b.
func (b Binaries) Path(name string) string {
	return filepath.Join(b.Dir, name)
}

// debianBinRoot holds one <major>/bin directory per installed version on
// Debian and Ubuntu.
const debianBinRoot = "/usr/lib/postgresql"

// FindBinaries finds the server programs of the given major version: in
// /usr/lib/postgresql/<major>/bin, then in the directory printed by
// pg_config --bindir. A major of 0 picks the newest version found.
func FindBinaries(ctx context.Context, major int) (Binaries, error) {
	if major < 0 {
		return Binaries{}, fmt.Errorf("find binaries: invalid major version %d", major)
	}
	var found []Binaries
	var searched []string

	pattern := filepath.Join(debianBinRoot, "*", "bin")
	if major > 0 {
		pattern = filepath.Join(debianBinRoot, strconv.Itoa(major), "bin")
	}
	searched = append(searched, pattern)
	dirs, _ := filepath.Glob(pattern)
	for _, dir := range dirs {
		m, err := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		if err != nil || !hasServer(dir) {
			continue
		}
		found = append(found, Binaries{Dir: dir, Major: m})
	}

	if b, err := pgConfigBinaries(ctx); err == nil {
		searched = append(searched, "pg_config --bindir ("+b.Dir+")")
		found = append(found, b)
	} else {
		searched = append(searched, "pg_config --bindir ("+err.Error()+")")
	}

	var best *Binaries
	for i := range found {
		b := &found[i]
		if major > 0 && b.Major != major {
			continue
		}
		if best == nil || b.Major > best.Major {
			best = b
		}
	}
	if best == nil {
		want := "any version"
		if major > 0 {
			want = "version " + strconv.Itoa(major)
		}
		var have []string
		for _, b := range found {
			have = append(have, fmt.Sprintf("%d in %s", b.Major, b.Dir))
		}
		sort.Strings(have)
		msg := fmt.Sprintf("find binaries: no PostgreSQL server programs (initdb, pg_ctl, postgres) of %s; searched %s",
			want, strings.Join(searched, ", "))
		if len(have) > 0 {
			msg += "; found " + strings.Join(have, ", ")
		}
		return Binaries{}, errors.New(msg)
	}
	return *best, nil
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// pgConfigBinaries asks pg_config on the PATH for its bindir and version.
func pgConfigBinaries(ctx context.Context) (Binaries, error) {
	path, err := exec.LookPath("pg_config")
	if err != nil {
		return Binaries{}, errors.New("not on PATH")
	}
	out := func(arg string) (string, error) {
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, path, arg)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("pg_config %s: %w: %s", arg, err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(stdout.String()), nil
	}
	dir, err := out("--bindir")
	if err != nil {
		return Binaries{}, err
	}
	ver, err := out("--version")
	if err != nil {
		return Binaries{}, err
	}
	major, ok := parseMajor(strings.TrimPrefix(ver, "PostgreSQL "))
	if !ok {
		return Binaries{}, fmt.Errorf("pg_config --version: unexpected %q", ver)
	}
	if !hasServer(dir) {
		return Binaries{}, fmt.Errorf("%s has no server programs", dir)
	}
	return Binaries{Dir: dir, Major: major}, nil
}

// parseMajor returns the major version at the start of a version string
// such as "15.8 (Debian 15.8-1)" or "17beta1".
func parseMajor(v string) (int, bool) {
	end := 0
	for end < len(v) && v[end] >= '0' && v[end] <= '9' {
		end++
	}
	m, err := strconv.Atoi(v[:end])
	return m, err == nil && m > 0
}
