package jobs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/repository"
	"github.com/backstop/backstop/store/repository/storage"
)

// flipByte flips one bit of the byte in the middle of a read-only repository file.
func flipByte(t *testing.T, st storage.Storage, key string) {
	t.Helper()
	ctx := context.Background()
	data, err := st.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := st.Put(ctx, key, data, false); err != nil {
		t.Fatal(err)
	}
}

// flipBlob flips one bit in the stored copy of a blob, in the middle of its range in
// its pack.
func flipBlob(t *testing.T, repo *repository.Repo, name string) {
	t.Helper()
	ctx := context.Background()
	if err := repo.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	pack, off, n, err := repo.Locate(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	key := repository.PackKey(pack)
	data, err := repo.Storage().Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	data[off+n/2] ^= 0x01
	if err := repo.Storage().Put(ctx, key, data, false); err != nil {
		t.Fatal(err)
	}
}

// failedRestore runs a restore job that must fail, and returns its error and final row.
func failedRestore(t *testing.T, e *env, backupID int64, into string) (store.Job, error) {
	t.Helper()
	job, err := e.runner.Run(context.Background(), restoreParams(backupID, into))
	if err == nil {
		t.Fatalf("Run(restore of backup %d into %s) succeeded, want an error", backupID, into)
	}
	if job.State != store.JobFailed {
		t.Errorf("restore job state = %s, want %s", job.State, store.JobFailed)
	}
	if job.Error == "" || !strings.Contains(err.Error(), job.Error) {
		t.Errorf("restore job error = %q, want the returned error %q", job.Error, err)
	}
	return job, err
}

// wantGone checks that a restore target that did not exist before is gone.
func wantGone(t *testing.T, into string) {
	t.Helper()
	if _, err := os.Stat(into); !errors.Is(err, os.ErrNotExist) {
		entries, _ := os.ReadDir(into)
		t.Errorf("after a failed restore, Stat(%s) = %v with %d entries, want it removed", into, err, len(entries))
	}
}

// wantEmpty checks that a restore target that existed empty before is still there, empty.
func wantEmpty(t *testing.T, into string) {
	t.Helper()
	entries, err := os.ReadDir(into)
	if err != nil {
		t.Errorf("after a failed restore, ReadDir(%s) = %v, want the empty directory kept", into, err)
		return
	}
	if len(entries) > 0 {
		t.Errorf("after a failed restore, %s holds %d entries (first %s), want none", into, len(entries), entries[0].Name())
	}
}

func TestRestoreCorruptObject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := shared.Cluster(t)
	dsn := createDatabase(t, c, "corrupt_object")
	execSQL(t, dsn,
		`CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL)`,
		`INSERT INTO accounts SELECT g, md5(g::text) FROM generate_series(1, 3000) g`,
		`CHECKPOINT`)
	relPath := queryValue(t, connect(t, dsn), `SELECT pg_relation_filepath('accounts')`)
	e := setup(t, jobs.Options{})
	src := e.register(t, "src", dsn)
	_, b := e.backup(t, src)

	// Find the table's first block, stored once in this backup, and corrupt it.
	m, err := e.repo.Manifest(ctx, b.RepoID)
	if err != nil {
		t.Fatal(err)
	}
	var object string
	uses := map[string]int{}
	for _, f := range m.Files {
		for _, name := range f.Blocks {
			uses[name]++
		}
		if f.Path == relPath && len(f.Blocks) > 0 {
			object = f.Blocks[0]
		}
	}
	if object == "" {
		t.Fatalf("backup manifest has no blocks for %s", relPath)
	}
	if uses[object] != 1 {
		t.Fatalf("object %s is used %d times in the backup, want once", object, uses[object])
	}
	flipBlob(t, e.repo, object)

	for _, tc := range []struct {
		name   string
		exists bool // the target exists, empty, before the restore
	}{
		{"new target", false},
		{"empty target", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			into := filepath.Join(reachableDir(t), "data")
			if tc.exists {
				if err := os.Mkdir(into, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			job, err := failedRestore(t, e, b.ID, into)
			var ce *repository.CorruptError
			if !errors.As(err, &ce) || ce.Object != object {
				t.Errorf("restore error = %v, want a *repository.CorruptError for object %s", err, object)
			}
			for _, want := range []string{relPath, object} {
				if !strings.Contains(err.Error(), want) || !strings.Contains(job.Error, want) {
					t.Errorf("restore error = %q (job: %q), want it to name %s", err, job.Error, want)
				}
			}
			if tc.exists {
				wantEmpty(t, into)
			} else {
				wantGone(t, into)
			}
		})
	}

	t.Run("missing object", func(t *testing.T) {
		// Another block of the same backup, deleted from the repository.
		var victim string
		for _, f := range m.Files {
			if strings.HasPrefix(f.Path, "global/") && len(f.Blocks) == 1 && uses[f.Blocks[0]] == 1 {
				victim = f.Blocks[0]
				break
			}
		}
		if victim == "" {
			t.Fatal("no global/ file with a block of its own")
		}
		// Its whole pack, as a storage that lost an object would.
		pack, _, _, err := e.repo.Locate(ctx, victim)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.repo.Storage().Delete(ctx, repository.PackKey(pack)); err != nil {
			t.Fatal(err)
		}
		into := filepath.Join(reachableDir(t), "data")
		job, err := failedRestore(t, e, b.ID, into)
		// Files are restored in parallel: whichever file of the lost pack is reached
		// first is reported, with its object and the pack.
		if !errors.Is(err, repository.ErrNotFound) || !strings.Contains(err.Error(), pack) {
			t.Errorf("restore error = %v, want repository.ErrNotFound naming pack %s", err, pack)
		}
		if job.State != store.JobFailed {
			t.Errorf("restore job state = %s, want failed", job.State)
		}
		wantGone(t, into)
	})
}

func TestRestoreCorruptManifest(t *testing.T) {
	t.Parallel()
	c := shared.Cluster(t)
	dsn := createDatabase(t, c, "corrupt_manifest")
	e := setup(t, jobs.Options{})
	src := e.register(t, "src", dsn)
	_, b := e.backup(t, src)

	rel := "backups/" + b.RepoID + ".manifest"
	flipByte(t, e.repo.Storage(), rel)

	into := filepath.Join(reachableDir(t), "data")
	job, err := failedRestore(t, e, b.ID, into)
	var ce *repository.CorruptError
	if !errors.As(err, &ce) || ce.Object != rel {
		t.Errorf("restore error = %v, want a *repository.CorruptError for %s", err, rel)
	}
	if !strings.Contains(job.Error, rel) || !strings.Contains(job.Error, "authentication failed") {
		t.Errorf("restore job error = %q, want it to name %s and say it failed authentication", job.Error, rel)
	}
	wantGone(t, into)
}

// TestRestoreFailsVerification restores a backup whose blocks are all authentic but whose
// repository manifest gives a file another file's content, as a faulty writer could. The
// restore's own CRC-32C check finds it as the file is written; when the writer swapped
// the recorded CRC-32C too, only pg_verifybackup can tell. Either way the directory must
// not be left behind as if good.
func TestRestoreFailsVerification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := shared.Cluster(t)
	dsn := createDatabase(t, c, "bad_manifest")
	e := setup(t, jobs.Options{})
	src := e.register(t, "src", dsn)
	_, b := e.backup(t, src)
	orig, err := e.repo.Manifest(ctx, b.RepoID)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		swapCRC   bool
		wantWords string
	}{
		{"blocks swapped", false, "CRC-32C"},
		{"blocks and checksum swapped", true, "pg_verifybackup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := *orig
			m.Files = slices.Clone(orig.Files)
			// Two files of one size with different content: give the first the second's blocks.
			bySize := map[int64]int{}
			swapped := ""
			for i, f := range m.Files {
				if f.Type != "file" || len(f.Blocks) == 0 || !strings.HasPrefix(f.Path, "base/") {
					continue
				}
				if j, ok := bySize[f.Size]; ok && m.Files[j].Blocks[0] != f.Blocks[0] {
					m.Files[j].Blocks = f.Blocks
					if tc.swapCRC {
						m.Files[j].CRC32C = f.CRC32C
					}
					swapped = m.Files[j].Path
					break
				}
				bySize[f.Size] = i
			}
			if swapped == "" {
				t.Fatal("no two files of the same size with different content")
			}
			if err := e.repo.Storage().Delete(ctx, "backups/"+b.RepoID+".manifest"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.repo.PutManifest(ctx, b.RepoID, &m); err != nil {
				t.Fatalf("PutManifest(tampered) = %v", err)
			}

			into := filepath.Join(reachableDir(t), "data")
			job, err := failedRestore(t, e, b.ID, into)
			if !strings.Contains(err.Error(), tc.wantWords) || !strings.Contains(job.Error, swapped) {
				t.Errorf("restore error = %q, want %s to name %s", job.Error, tc.wantWords, swapped)
			}
			wantGone(t, into)
		})
	}
}
