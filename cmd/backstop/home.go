package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
	"github.com/backstop/backstop/store/repository/storage"
)

// home is the one directory where every command finds its state: the catalog, the
// repository and its key. Commands work whether or not `serve` is running.
type home struct {
	dir   string
	store *store.Store
	repo  *repository.Repo
	// st is where the repository is: the local directory repoDir, or the object storage
	// that repository.json names.
	st storage.Storage
	// windows caches the sources' restorable windows for this process.
	windows *jobs.WindowCache
}

// windowCache returns the process's cache of restorable windows.
func (h *home) windowCache() *jobs.WindowCache {
	if h.windows == nil {
		h.windows = jobs.NewWindowCache(h.store, h.repo)
	}
	return h.windows
}

// keyEnv names the environment variable that may hold the repository key (hex) instead of
// the key file.
const keyEnv = "BACKSTOP_REPOSITORY_KEY"

// defaultHome is $BACKSTOP_HOME, else /var/lib/backstop for root (so that the postgres OS
// user can reach the sandbox clusters below it), else the per-user data directory.
func defaultHome() string {
	if h := os.Getenv("BACKSTOP_HOME"); h != "" {
		return h
	}
	if os.Geteuid() == 0 {
		return "/var/lib/backstop"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "backstop")
	}
	if d, err := os.UserHomeDir(); err == nil {
		return filepath.Join(d, ".local", "share", "backstop")
	}
	return ".backstop"
}

func (h *home) catalogPath() string    { return filepath.Join(h.dir, "catalog.db") }
func (h *home) repoDir() string        { return filepath.Join(h.dir, "repository") }
func (h *home) keyPath() string        { return filepath.Join(h.dir, "repository.key") }
func (h *home) repoConfigPath() string { return filepath.Join(h.dir, "repository.json") }

// repoConfig is repository.json: where a repository in object storage is. Credentials are
// never written here: they come from the environment (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY) or the AWS shared credentials file.
type repoConfig struct {
	URL       string `json:"url"` // s3://bucket/prefix
	Endpoint  string `json:"endpoint,omitempty"`
	Region    string `json:"region,omitempty"`
	PathStyle bool   `json:"path_style,omitempty"`
}

// exists reports whether this home has been initialized: a local repository directory, or
// the configuration of a remote one.
func (h *home) exists() bool {
	for _, p := range []string{h.repoDir(), h.repoConfigPath()} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// openStorage opens where the repository is. With remote set (backstop init --repository
// s3://…), a new home records it in repository.json first.
func (h *home) openStorage(ctx context.Context, remote *repoConfig) (storage.Storage, error) {
	if remote != nil {
		if h.exists() {
			return nil, fmt.Errorf("home %s already has a repository (%s): --repository is only for a new home", h.dir, h.repoLocation())
		}
		if _, err := h.s3(ctx, *remote); err != nil {
			return nil, err
		}
		b, err := json.MarshalIndent(remote, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(h.repoConfigPath(), append(b, '\n'), 0o600); err != nil {
			return nil, fmt.Errorf("home: %w", err)
		}
	}
	b, err := os.ReadFile(h.repoConfigPath())
	if errors.Is(err, fs.ErrNotExist) {
		return storage.NewLocal(h.repoDir())
	}
	if err != nil {
		return nil, fmt.Errorf("home: %w", err)
	}
	var rc repoConfig
	if err := json.Unmarshal(b, &rc); err != nil {
		return nil, fmt.Errorf("home: %s: %w", h.repoConfigPath(), err)
	}
	return h.s3(ctx, rc)
}

// s3 opens the object storage a repoConfig names.
func (h *home) s3(ctx context.Context, rc repoConfig) (storage.Storage, error) {
	cfg, err := storage.ParseS3URL(rc.URL)
	if err != nil {
		return nil, fmt.Errorf("repository: %w", err)
	}
	cfg.Endpoint, cfg.Region, cfg.PathStyle = rc.Endpoint, rc.Region, rc.PathStyle
	st, err := storage.NewS3(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", rc.URL, err)
	}
	return st, nil
}

// repoLocation names the repository for messages.
func (h *home) repoLocation() string {
	if h.st != nil {
		return h.st.String()
	}
	if b, err := os.ReadFile(h.repoConfigPath()); err == nil {
		var rc repoConfig
		if json.Unmarshal(b, &rc) == nil {
			return rc.URL
		}
	}
	return h.repoDir()
}

// openHome opens the catalog and the repository of the home in dir. With create, a
// missing home, repository and key are made; otherwise their absence is an error saying
// how to make them.
func openHome(ctx context.Context, dir string, create bool) (*home, error) {
	return openHomeWith(ctx, dir, create, nil)
}

// openHomeWith is openHome that, for a new home, puts the repository in the object storage
// remote names.
func openHomeWith(ctx context.Context, dir string, create bool, remote *repoConfig) (*home, error) {
	h := &home{dir: dir}
	if !h.exists() && !create {
		return nil, fmt.Errorf("no Backstop home at %s: run `backstop init` (or `backstop demo`), or point --home/BACKSTOP_HOME at an existing one", dir)
	}
	key, err := h.openRepository(ctx, create, remote)
	if err != nil {
		return nil, err
	}
	repo, st := h.repo, h.st
	// The repository is the truth and the catalog its index: a lost catalog must not be
	// replaced, silently, by an empty one that lists nothing of what the repository holds.
	if _, err := os.Stat(h.catalogPath()); errors.Is(err, fs.ErrNotExist) {
		if holds, err := repository.Contents(ctx, st); err != nil {
			return nil, fmt.Errorf("home: %w", err)
		} else if holds != "" {
			return nil, h.lostCatalog("is missing", holds)
		}
	}
	// Source passwords are sealed with a subkey of the repository key: a copy of the
	// catalog alone opens no database.
	sealer, err := store.NewSealer(key)
	if err != nil {
		return nil, fmt.Errorf("home: %w", err)
	}
	cat, err := store.Open(ctx, h.catalogPath(), store.WithSealer(sealer))
	if err != nil {
		return nil, fmt.Errorf("home: %w", err)
	}
	if had, err := cat.HadSources(ctx); err != nil || !had {
		holds, cerr := repository.Contents(ctx, st)
		switch {
		case err != nil:
		case cerr != nil:
			err = fmt.Errorf("home: %w", cerr)
		case holds != "":
			err = h.lostCatalog("holds no source (it was created anew)", holds)
		}
		if err != nil {
			cat.Close()
			return nil, err
		}
	}
	h.repo, h.store = repo, cat
	if err := os.MkdirAll(h.restoreRoot(), 0o711); err != nil {
		cat.Close()
		return nil, fmt.Errorf("home: %w", err)
	}
	// A job whose process died shows as interrupted, whichever command looks first.
	if _, err := jobs.Sweep(ctx, cat, jobs.DefaultStaleAfter); err != nil {
		cat.Close()
		return nil, err
	}
	return h, nil
}

// openRepository opens the home's storage and key, and the repository in it (creating
// them with create), setting h.st and h.repo; it returns the key. It does not look at the
// catalog: `catalog rebuild` opens the repository of a home whose catalog is lost.
func (h *home) openRepository(ctx context.Context, create bool, remote *repoConfig) ([]byte, error) {
	// 0711: others may pass through to the sandbox clusters, but not list or read.
	if err := os.MkdirAll(h.dir, 0o711); err != nil {
		return nil, fmt.Errorf("home: %w", err)
	}
	st, err := h.openStorage(ctx, remote)
	if err != nil {
		return nil, err
	}
	h.st = st
	key, err := h.loadKey(ctx, create)
	if err != nil {
		return nil, err
	}
	repo, err := repository.OpenStorage(ctx, st, key, h.repoOptions())
	if errors.Is(err, fs.ErrNotExist) && create {
		repo, err = repository.InitStorage(ctx, st, key, h.repoOptions())
	}
	if err != nil {
		return nil, fmt.Errorf("home: %w", err)
	}
	h.repo = repo
	return key, nil
}

// lostCatalog is the error for a catalog that cannot be the index of the repository beside it.
func (h *home) lostCatalog(what, holds string) error {
	return fmt.Errorf("catalog %s %s, but the repository %s holds %s: refusing to run on an empty catalog, "+
		"which would show none of them. Restore catalog.db (with catalog.db-wal if there is one) from a copy "+
		"into %s, or rebuild it from the repository with `backstop catalog rebuild`; move an empty "+
		"catalog.db aside first", h.catalogPath(), what, h.repoLocation(), holds, h.dir)
}

// loadKey returns the repository key from the environment or the key file, generating the
// file (mode 0600) when create is set and neither exists. The key never enters the catalog.
func (h *home) loadKey(ctx context.Context, create bool) ([]byte, error) {
	if v := os.Getenv(keyEnv); v != "" {
		key, err := repository.DecodeKey(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", keyEnv, err)
		}
		return key, nil
	}
	b, err := os.ReadFile(h.keyPath())
	if err == nil {
		key, err := repository.DecodeKey(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", h.keyPath(), err)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) || !create {
		return nil, fmt.Errorf("repository key: %w (set %s or restore the key file)", err, keyEnv)
	}
	if _, err := h.st.Get(ctx, repository.ConfigKey); err == nil {
		return nil, fmt.Errorf("repository key: %s holds a repository but the key file %s is missing: set %s or restore the key file; "+
			"without the key no backup in it can be read", h.repoLocation(), h.keyPath(), keyEnv)
	}
	key, err := repository.GenerateKey()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(h.keyPath(), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("repository key: %w", err)
	}
	if _, err := fmt.Fprintln(f, repository.EncodeKey(key)); err != nil {
		f.Close()
		return nil, fmt.Errorf("repository key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("repository key: %w", err)
	}
	return key, f.Close()
}

// restoreRoot holds the data directories of restored instances (0711, like the home: the
// server's OS user passes through to its own directories).
func (h *home) restoreRoot() string { return filepath.Join(h.dir, "restores") }

// workers are the job kinds every process runs.
func (h *home) workers() []jobs.Worker {
	exe, err := os.Executable()
	if err != nil {
		exe = "backstop"
	}
	return []jobs.Worker{jobs.NewBackupWorker(h.store, h.repo), jobs.NewRestoreWorker(h.store, h.repo),
		jobs.NewPITRWorker(h.store, h.repo, exe), jobs.NewInstanceWorker(h.store), jobs.NewPruneWorker(h.repo),
		jobs.NewExpireWorker(h.store, h.repo), jobs.NewVerifyWorker(h.store, h.repo, h.windowCache()),
		h.drillWorker(exe)}
}

func (h *home) Close() error {
	if h.store != nil {
		return h.store.Close()
	}
	return nil
}

// repoOptions keeps the repository's index cache in the home, so that it is read from the
// repository once, not at every command.
func (h *home) repoOptions() repository.Options {
	return repository.Options{CacheDir: filepath.Join(h.dir, "cache")}
}
