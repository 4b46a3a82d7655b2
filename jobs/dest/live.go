package dest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LiveClusters returns the data directories and tablespace directories of every
// PostgreSQL server running on this host, found from the processes themselves: a
// postmaster's working directory is its data directory. This covers clusters Backstop
// does not know, which a restore must not touch either. Processes it may not inspect are
// skipped.
func LiveClusters() []Protected {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []Protected
	seen := map[string]bool{}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		dir, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if err != nil || seen[dir] {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
			continue
		}
		seen[dir] = true
		out = append(out, Protected{Path: dir, What: "the data directory of a running PostgreSQL server"})
		links, _ := os.ReadDir(filepath.Join(dir, "pg_tblspc"))
		for _, l := range links {
			if t, err := os.Readlink(filepath.Join(dir, "pg_tblspc", l.Name())); err == nil && filepath.IsAbs(t) {
				out = append(out, Protected{Path: t, What: fmt.Sprintf("tablespace %s of the running PostgreSQL server in %s", l.Name(), dir)})
			}
		}
	}
	return out
}

// CheckPort refuses a port outside 1024–65535, one that inUse names (with what uses it),
// or one that something on 127.0.0.1 already listens on. suggest offers a free one.
func CheckPort(port int, inUse map[int]string) error {
	switch {
	case port < 1024 || port > 65535:
		return refuse("port", "enter a port from 1024 to 65535")
	case inUse[port] != "":
		return refuse("port", "port %d is taken by %s: choose another (%d is free)", port, inUse[port], SuggestPort(inUse))
	case !PortFree(port):
		return refuse("port", "port %d is in use: choose another (%d is free)", port, SuggestPort(inUse))
	}
	return nil
}

// SuggestPort offers a free TCP port on 127.0.0.1 for a new instance, from 5433 up.
func SuggestPort(inUse map[int]string) int {
	for p := 5433; p < 5633; p++ {
		if inUse[p] == "" && PortFree(p) {
			return p
		}
	}
	return 5433
}

// PortFree reports whether nothing listens on 127.0.0.1:port now.
func PortFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
