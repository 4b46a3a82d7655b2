package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
)

func (c *cli) catalog(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "rebuild" {
		return errors.New("usage: backstop catalog rebuild")
	}
	return c.catalogRebuild(ctx, args[1:])
}

// catalogRebuild makes a new catalog from what the repository holds: sources, backups
// and archived WAL. It refuses a catalog that holds anything; a missing one is built
// beside the home's and moved into place only once it is complete.
func (c *cli) catalogRebuild(ctx context.Context, args []string) error {
	flags := c.flags("catalog rebuild", "catalog rebuild")
	if pos, err := parse(flags, args); err != nil {
		return err
	} else if len(pos) != 0 {
		flags.Usage()
		return errors.New("catalog rebuild takes no arguments")
	}
	h := &home{dir: c.home}
	if !h.exists() {
		return fmt.Errorf("no Backstop home at %s: point --home/BACKSTOP_HOME at the home whose catalog is lost "+
			"(its repository, or repository.json for one in object storage, and the key must be there)", c.home)
	}
	key, err := h.openRepository(ctx, false, nil)
	if err != nil {
		return err
	}
	defer h.repo.Close()
	sealer, err := store.NewSealer(key)
	if err != nil {
		return fmt.Errorf("home: %w", err)
	}

	// Into the existing catalog only if it holds nothing; else into a new file, moved into
	// place once complete, so that a failed rebuild leaves no half-made catalog.db.
	path := h.catalogPath()
	_, err = os.Stat(path)
	inPlace := err == nil
	switch {
	case inPlace:
		cat, err := store.Open(ctx, path, store.WithSealer(sealer))
		if err != nil {
			return fmt.Errorf("catalog %s: %w", path, err)
		}
		empty, err := cat.Empty(ctx)
		cat.Close()
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("catalog %s holds sources or backups: a rebuild makes a new catalog and never merges into one. "+
				"If it is damaged or out of date, move it aside first (with catalog.db-wal and catalog.db-shm), then run "+
				"`backstop catalog rebuild` again", path)
		}
	case errors.Is(err, fs.ErrNotExist):
		path += ".rebuild"
		for _, sfx := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(path + sfx); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("catalog: %w", err)
			}
		}
	default:
		return fmt.Errorf("catalog: %w", err)
	}

	cat, err := store.Open(ctx, path, store.WithSealer(sealer))
	if err != nil {
		return fmt.Errorf("catalog %s: %w", path, err)
	}
	fmt.Fprintf(c.stderr, "Rebuilding the catalog from %s ...\n", h.repoLocation())
	rep, err := jobs.RebuildCatalog(ctx, cat, h.repo, func(s string) { fmt.Fprintln(c.stderr, "  "+s) })
	if cerr := cat.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if inPlace {
			return fmt.Errorf("%w (the catalog %s is partly rebuilt: move it aside and run `backstop catalog rebuild` again)", err, path)
		}
		return fmt.Errorf("%w (nothing was put in place of catalog.db; the partial rebuild is in %s)", err, path)
	}
	if rep.Sources == 0 {
		why := strings.Join(append(rep.Unassigned, rep.Problems...), "; ")
		if why == "" {
			why = "it holds no source record"
		}
		where := "it was left in " + path + ", not put in place of catalog.db"
		if inPlace {
			where = "move catalog.db aside before trying again"
		}
		return fmt.Errorf("no source could be rebuilt from %s (%s): %s", h.repoLocation(), why, where)
	}
	if !inPlace {
		for _, sfx := range []string{"-wal", "-shm", ""} {
			if err := os.Rename(path+sfx, h.catalogPath()+sfx); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("catalog: put the rebuilt catalog in place: %w", err)
			}
		}
	}
	// The rebuilt catalog must open as every other command opens it.
	h2, err := openHome(ctx, c.home, false)
	if err != nil {
		return fmt.Errorf("the rebuilt catalog does not open: %w", err)
	}
	h2.Close()

	lines := []string{fmt.Sprintf("Rebuilt %s from %s: %d source(s) (%d removed), %d backup(s), %d WAL file(s) with %d commit(s) and %d restore point(s).",
		h.catalogPath(), h.repoLocation(), rep.Sources, rep.RemovedSources, rep.Backups, rep.WALFiles, rep.Commits, rep.RestorePoints)}
	if len(rep.Unassigned) > 0 {
		lines = append(lines, "Left out (in the repository, but no source could be found for them):")
		for _, u := range rep.Unassigned {
			lines = append(lines, "  - "+u)
		}
	}
	if len(rep.Problems) > 0 {
		lines = append(lines, "Could not be read:")
		for _, p := range rep.Problems {
			lines = append(lines, "  - "+p)
		}
	}
	lines = append(lines, "Not in the repository, so lost with the old catalog:")
	for _, l := range rep.Lost {
		lines = append(lines, "  - "+l)
	}
	lines = append(lines, "Add users again with `backstop user add NAME --role admin` before signing in to the dashboard.")
	return c.printResult(map[string]any{
		"catalog": h.catalogPath(), "repository": h.repoLocation(), "sources": rep.Sources, "removed_sources": rep.RemovedSources,
		"backups": rep.Backups, "wal_files": rep.WALFiles, "commits": rep.Commits, "restore_points": rep.RestorePoints,
		"unassigned": orEmpty(rep.Unassigned), "problems": orEmpty(rep.Problems), "lost": rep.Lost,
	}, strings.Split(strings.Join(lines, "\n"), "\n")...)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
