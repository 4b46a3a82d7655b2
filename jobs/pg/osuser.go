package pg

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// serverUserName is the OS user the server runs as when Backstop runs as root.
const serverUserName = "postgres"

// osUser is the OS user that runs the PostgreSQL server binaries.
type osUser struct {
	name     string
	uid, gid int
	groups   []int
	// viaRunuser is set when the current process is root and commands must
	// be run through runuser to drop to the server's user.
	viaRunuser bool
	runuser    string
}

// serverUser returns the OS user that runs the server: "postgres" when the
// current process is root, the current user otherwise.
func serverUser() (osUser, error) {
	if os.Geteuid() != 0 {
		name := strconv.Itoa(os.Geteuid())
		if cur, err := user.Current(); err == nil {
			name = cur.Username
		}
		return osUser{name: name, uid: os.Geteuid(), gid: os.Getegid(), groups: currentGroups()}, nil
	}
	u, err := user.Lookup(serverUserName)
	if err != nil {
		return osUser{}, fmt.Errorf("server user: running as root, so the server must run as OS user %q: %w", serverUserName, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return osUser{}, fmt.Errorf("server user: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return osUser{}, fmt.Errorf("server user: gid %q: %w", u.Gid, err)
	}
	ou := osUser{name: u.Username, uid: uid, gid: gid, viaRunuser: true}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.Atoi(g); err == nil {
				ou.groups = append(ou.groups, n)
			}
		}
	}
	ou.runuser, err = exec.LookPath("runuser")
	if err != nil {
		for _, p := range []string{"/usr/sbin/runuser", "/sbin/runuser"} {
			if _, serr := os.Stat(p); serr == nil {
				ou.runuser, err = p, nil
				break
			}
		}
		if err != nil {
			return osUser{}, fmt.Errorf("server user: running as root needs runuser to drop to OS user %q: %w", serverUserName, err)
		}
	}
	return ou, nil
}

func currentGroups() []int {
	gs, err := os.Getgroups()
	if err != nil {
		return []int{os.Getegid()}
	}
	return append(gs, os.Getegid())
}

// command builds a command that runs bin with args as the server user.
func (u osUser) command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if u.viaRunuser {
		cmd = exec.CommandContext(ctx, u.runuser, append([]string{"-u", u.name, "--", bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	// pg_ctl start leaves a server running; it must not hold our pipes open,
	// but if anything does, do not wait for it forever.
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	return cmd
}

// run runs cmd, capturing its output into the returned error.
func run(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		name := filepath.Base(cmd.Path)
		args := cmd.Args
		if len(args) > 4 && args[1] == "-u" && args[3] == "--" {
			name = filepath.Base(args[4])
		}
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			return fmt.Errorf("%s: %w", name, err)
		}
		return fmt.Errorf("%s: %w: %s", name, err, msg)
	}
	return nil
}

// chown gives path to the server user (a no-op when not root).
func (u osUser) chown(path string) error {
	if !u.viaRunuser {
		return nil
	}
	if err := os.Lchown(path, u.uid, u.gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	return nil
}

// chownTree gives root and everything under it to the server user.
func (u osUser) chownTree(root string) error {
	if !u.viaRunuser {
		return nil
	}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, u.uid, u.gid)
	})
	if err != nil {
		return fmt.Errorf("chown %s: %w", root, err)
	}
	return nil
}

// mkdirOwned creates dir (and missing parents) and gives dir to the server user.
func (u osUser) mkdirOwned(dir string, perm fs.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	return u.chown(dir)
}

// checkReachable returns an error naming the first ancestor of path that
// the server user cannot traverse: the server could not open its files.
func (u osUser) checkReachable(path string) error {
	if !u.viaRunuser {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("reachable: %w", err)
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("reachable: %w", err)
		}
		if !u.canSearch(fi) {
			return fmt.Errorf("directory %s (mode %04o) cannot be entered by OS user %q, which runs the server: choose a location it can reach, or run chmod o+x %s",
				dir, fi.Mode().Perm(), u.name, dir)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

func (u osUser) canSearch(fi fs.FileInfo) bool {
	return u.allowed(fi, 0o1)
}

// allowed reports whether the user has the permission bits perm (read 4,
// write 2, search 1) on the file described by fi.
func (u osUser) allowed(fi fs.FileInfo, perm fs.FileMode) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	mode := fi.Mode().Perm()
	switch {
	case int(st.Uid) == u.uid:
		return mode>>6&perm == perm
	case u.inGroup(int(st.Gid)):
		return mode>>3&perm == perm
	default:
		return mode&perm == perm
	}
}

func (u osUser) inGroup(gid int) bool {
	if gid == u.gid {
		return true
	}
	for _, g := range u.groups {
		if g == gid {
			return true
		}
	}
	return false
}
