package pg_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/backstop/backstop/jobs/pg"
)

// tarEntry is one entry of a test archive.
type tarEntry struct {
	name     string
	typeflag byte
	mode     int64
	body     string
	link     string
	size     int64 // overrides len(body) when non-zero
}

// buildTar writes a tar archive as the server does: no end-of-archive
// blocks unless terminate is set.
func buildTar(t testing.TB, terminate bool, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o600
		}
		size := int64(len(e.body))
		if e.size != 0 {
			size = e.size
		}
		hdr := &tar.Header{Name: e.name, Typeflag: e.typeflag, Mode: mode, Size: size, Linkname: e.link,
			ModTime: time.Unix(1700000000, 0), Format: tar.FormatUSTAR}
		if e.typeflag != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("WriteHeader(%q) = %v", e.name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatalf("Write(%q) = %v", e.name, err)
		}
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	if terminate {
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

type gotEntry struct {
	Path       string
	Type       pg.EntryType
	Mode       fs.FileMode
	Size       int64
	LinkTarget string
	Body       string
}

func readAll(data []byte, prefix string) ([]gotEntry, error) {
	var got []gotEntry
	err := pg.ReadTar(bytes.NewReader(data), prefix, func(e pg.Entry, r io.Reader) error {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		got = append(got, gotEntry{e.Path, e.Type, e.Mode, e.Size, e.LinkTarget, string(b)})
		return nil
	})
	return got, err
}

func TestReadTar(t *testing.T) {
	t.Parallel()
	data := buildTar(t, false,
		tarEntry{name: "backup_label", typeflag: tar.TypeReg, body: "START WAL LOCATION: 0/2000028\n"},
		tarEntry{name: "base/", typeflag: tar.TypeDir, mode: 0o700},
		tarEntry{name: "base/1/", typeflag: tar.TypeDir, mode: 0o700},
		tarEntry{name: "base/1/1259", typeflag: tar.TypeReg, body: strings.Repeat("x", 9000)},
		tarEntry{name: "./pg_wal/archive_status/", typeflag: tar.TypeDir, mode: 0o700},
		tarEntry{name: "pg_tblspc/16385", typeflag: tar.TypeSymlink, mode: 0o777, link: "/srv/ts1"},
		tarEntry{name: "empty", typeflag: tar.TypeReg, mode: 0o640},
	)
	got, err := readAll(data, "")
	if err != nil {
		t.Fatalf("ReadTar() = %v", err)
	}
	want := []gotEntry{
		{"backup_label", pg.File, 0o600, 30, "", "START WAL LOCATION: 0/2000028\n"},
		{"base", pg.Dir, 0o700, 0, "", ""},
		{"base/1", pg.Dir, 0o700, 0, "", ""},
		{"base/1/1259", pg.File, 0o600, 9000, "", strings.Repeat("x", 9000)},
		{"pg_wal/archive_status", pg.Dir, 0o700, 0, "", ""},
		{"pg_tblspc/16385", pg.Symlink, 0o777, 0, "/srv/ts1", ""},
		{"empty", pg.File, 0o640, 0, "", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadTar() entries mismatch (-want +got):\n%s", diff)
	}

	t.Run("prefix", func(t *testing.T) {
		t.Parallel()
		data := buildTar(t, true, tarEntry{name: "000000010000000000000002", typeflag: tar.TypeReg, body: "wal"})
		got, err := readAll(data, "pg_wal")
		if err != nil {
			t.Fatalf("ReadTar(prefix pg_wal) = %v", err)
		}
		if len(got) != 1 || got[0].Path != "pg_wal/000000010000000000000002" {
			t.Errorf("ReadTar(prefix pg_wal) = %+v, want one entry pg_wal/000000010000000000000002", got)
		}
	})

	t.Run("unread-content-is-skipped", func(t *testing.T) {
		t.Parallel()
		data := buildTar(t, false,
			tarEntry{name: "a", typeflag: tar.TypeReg, body: strings.Repeat("a", 5000)},
			tarEntry{name: "b", typeflag: tar.TypeReg, body: "bbb"})
		var paths []string
		var kept io.Reader
		err := pg.ReadTar(bytes.NewReader(data), "", func(e pg.Entry, r io.Reader) error {
			paths = append(paths, e.Path)
			kept = r
			return nil
		})
		if err != nil {
			t.Fatalf("ReadTar() = %v", err)
		}
		if diff := cmp.Diff([]string{"a", "b"}, paths); diff != "" {
			t.Errorf("ReadTar() paths mismatch (-want +got):\n%s", diff)
		}
		if _, err := kept.Read(make([]byte, 1)); err == nil {
			t.Errorf("Read() after the callback returned = nil error, want an error")
		}
	})
}

func TestReadTarRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		entries []tarEntry
		want    string
	}{
		{"dotdot", []tarEntry{{name: "../x", typeflag: tar.TypeReg, body: "x"}}, `".."`},
		{"dotdot-inside", []tarEntry{{name: "base/../../x", typeflag: tar.TypeReg, body: "x"}}, `".."`},
		{"absolute", []tarEntry{{name: "/etc/passwd", typeflag: tar.TypeReg, body: "x"}}, "absolute"},
		{"not-clean", []tarEntry{{name: "base//1", typeflag: tar.TypeReg, body: "x"}}, "not clean"},
		{"symlink-escape", []tarEntry{{name: "pg_tblspc/16385", typeflag: tar.TypeSymlink, link: "../../etc"}}, "absolute"},
		{"symlink-elsewhere", []tarEntry{{name: "pg_wal", typeflag: tar.TypeSymlink, link: "/etc"}}, "symbolic link outside pg_tblspc"},
		{"symlink-not-oid", []tarEntry{{name: "pg_tblspc/abc", typeflag: tar.TypeSymlink, link: "/srv"}}, "symbolic link outside pg_tblspc"},
		{"below-symlink", []tarEntry{
			{name: "pg_tblspc/16385", typeflag: tar.TypeSymlink, link: "/etc"},
			{name: "pg_tblspc/16385/passwd", typeflag: tar.TypeReg, body: "x"}}, "below symlink"},
		{"below-file", []tarEntry{
			{name: "a", typeflag: tar.TypeReg, body: "x"},
			{name: "a/b", typeflag: tar.TypeReg, body: "x"}}, "below file"},
		{"file-over-dir", []tarEntry{
			{name: "a/b", typeflag: tar.TypeReg, body: "x"},
			{name: "a", typeflag: tar.TypeReg, body: "x"}}, "replace a directory"},
		{"duplicate", []tarEntry{
			{name: "a", typeflag: tar.TypeReg, body: "x"},
			{name: "./a", typeflag: tar.TypeReg, body: "y"}}, "duplicate"},
		{"hardlink", []tarEntry{{name: "a", typeflag: tar.TypeLink, link: "b"}}, "hard link"},
		{"char-device", []tarEntry{{name: "tty", typeflag: tar.TypeChar}}, "device"},
		{"block-device", []tarEntry{{name: "sda", typeflag: tar.TypeBlock}}, "device"},
		{"fifo", []tarEntry{{name: "p", typeflag: tar.TypeFifo}}, "FIFO"},
		{"empty-name", []tarEntry{{name: "./", typeflag: tar.TypeDir}}, "empty name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var data []byte
			func() {
				defer func() {
					// archive/tar's writer refuses some names itself
					// (NUL); build those by hand.
					if recover() != nil {
						data = nil
					}
				}()
				data = buildTarLoose(t, tt.entries)
			}()
			if data == nil {
				t.Skip("archive/tar cannot write this entry")
			}
			_, err := readAll(data, "")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ReadTar(%s) = %v, want an error mentioning %q", tt.name, err, tt.want)
			}
		})
	}
}

// buildTarLoose writes entries with raw ustar headers, so that names the
// archive/tar writer would refuse can be tested too.
func buildTarLoose(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, e := range entries {
		size := int64(len(e.body))
		if e.typeflag != tar.TypeReg {
			size = 0
		}
		buf.Write(ustarHeader(e.name, e.typeflag, e.link, size))
		buf.WriteString(e.body)
		if pad := (512 - len(e.body)%512) % 512; pad > 0 {
			buf.Write(make([]byte, pad))
		}
	}
	return buf.Bytes()
}

// ustarHeader builds a 512-byte ustar header as PostgreSQL's tarCreateHeader does.
func ustarHeader(name string, typeflag byte, link string, size int64) []byte {
	h := make([]byte, 512)
	copy(h[0:100], name)
	copy(h[100:108], "0000600\x00")
	copy(h[108:116], "0000145\x00")
	copy(h[116:124], "0000150\x00")
	copy(h[124:136], octal(size, 12))
	copy(h[136:148], octal(1700000000, 12))
	h[156] = typeflag
	copy(h[157:257], link)
	copy(h[257:265], "ustar\x0000")
	for i := 148; i < 156; i++ {
		h[i] = ' '
	}
	var sum int64
	for _, c := range h {
		sum += int64(c)
	}
	copy(h[148:156], octal(sum, 7))
	h[155] = ' '
	return h
}

func octal(v int64, width int) string {
	return fmt.Sprintf("%0*o\x00", width-1, v)
}

func TestValidateEntry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		hdr  tar.Header
		want string
	}{
		{"nul-in-name", tar.Header{Name: "a\x00b", Typeflag: tar.TypeReg}, "NUL"},
		{"negative-size", tar.Header{Name: "a", Typeflag: tar.TypeReg, Size: -1}, "negative size"},
		{"dir-with-size", tar.Header{Name: "a/", Typeflag: tar.TypeDir, Size: 10}, "directory with size"},
		{"symlink-with-size", tar.Header{Name: "pg_tblspc/1", Typeflag: tar.TypeSymlink, Linkname: "/srv", Size: 3}, "symbolic link with size"},
		{"symlink-nul-target", tar.Header{Name: "pg_tblspc/1", Typeflag: tar.TypeSymlink, Linkname: "/srv\x00/x"}, "not a clean absolute path"},
		{"symlink-root", tar.Header{Name: "pg_tblspc/1", Typeflag: tar.TypeSymlink, Linkname: "/"}, "not a clean absolute path"},
		{"symlink-oid-zero", tar.Header{Name: "pg_tblspc/0", Typeflag: tar.TypeSymlink, Linkname: "/srv"}, "outside pg_tblspc"},
		{"symlink-oid-overflow", tar.Header{Name: "pg_tblspc/4294967296", Typeflag: tar.TypeSymlink, Linkname: "/srv"}, "outside pg_tblspc"},
		{"dot", tar.Header{Name: ".", Typeflag: tar.TypeDir}, "empty name"},
		{"long-name", tar.Header{Name: strings.Repeat("a/", 600) + "b", Typeflag: tar.TypeReg}, "longer than 1024"},
		{"long-target", tar.Header{Name: "pg_tblspc/1", Typeflag: tar.TypeSymlink, Linkname: "/" + strings.Repeat("a", 1024)}, "longer than 1024"},
		{"sparse", tar.Header{Name: "a", Typeflag: tar.TypeGNUSparse}, "unsupported type"},
		{"bad-prefix", tar.Header{Name: "a", Typeflag: tar.TypeReg}, "tar prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			prefix := ""
			if tt.name == "bad-prefix" {
				prefix = "../pg_wal/"
			}
			_, err := pg.ValidateEntry(&tt.hdr, prefix)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ValidateEntry(%q, %q) = %v, want an error mentioning %q", tt.hdr.Name, prefix, err, tt.want)
			}
		})
	}

	e, err := pg.ValidateEntry(&tar.Header{Name: "base/1/", Typeflag: tar.TypeDir, Mode: 0o4755}, "")
	want := pg.Entry{Path: "base/1", Type: pg.Dir, Mode: 0o755}
	if err != nil || e != want {
		t.Errorf("ValidateEntry(base/1/) = %+v, %v, want %+v", e, err, want)
	}
}

func isTablespaceLink(p string) bool {
	_, ok := pg.TablespaceOID(p)
	return ok
}

// FuzzReadTar feeds ReadTar arbitrary streams and checks that whatever it
// accepts is safe to write under a directory.
func FuzzReadTar(f *testing.F) {
	f.Add(buildTar(f, false,
		tarEntry{name: "PG_VERSION", typeflag: tar.TypeReg, body: "15\n"},
		tarEntry{name: "base/", typeflag: tar.TypeDir, mode: 0o700},
		tarEntry{name: "base/1/1259", typeflag: tar.TypeReg, body: "page"},
		tarEntry{name: "pg_tblspc/16385", typeflag: tar.TypeSymlink, link: "/srv/ts"}), "")
	f.Add(buildTar(f, true, tarEntry{name: "000000010000000000000001", typeflag: tar.TypeReg, body: "wal"}), "pg_wal/")
	f.Add(buildTarLoose(f, []tarEntry{{name: "../x", typeflag: tar.TypeReg, body: "x"}}), "")
	f.Add(buildTarLoose(f, []tarEntry{{name: "/etc/passwd", typeflag: tar.TypeReg, body: "root"}}), "")
	f.Add(buildTarLoose(f, []tarEntry{
		{name: "pg_tblspc/1", typeflag: tar.TypeSymlink, link: "/"},
		{name: "pg_tblspc/1/etc/passwd", typeflag: tar.TypeReg, body: "x"}}), "")
	f.Add(buildTarLoose(f, []tarEntry{{name: "pg_tblspc/1", typeflag: tar.TypeSymlink, link: "../../.."}}), "")
	f.Add(buildTarLoose(f, []tarEntry{{name: "a", typeflag: tar.TypeLink, link: "/etc/shadow"}}), "")
	// A PAX header can carry a path of up to a megabyte: it must be refused
	// quickly, not walked component by component.
	var deep bytes.Buffer
	tw := tar.NewWriter(&deep)
	if err := tw.WriteHeader(&tar.Header{Name: strings.Repeat("a/", 1<<14) + "b", Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		f.Fatal(err)
	}
	f.Add(deep.Bytes(), "")
	f.Fuzz(func(t *testing.T, data []byte, prefix string) {
		seen := make(map[string]bool)
		_ = pg.ReadTar(bytes.NewReader(data), prefix, func(e pg.Entry, r io.Reader) error {
			if e.Path == "" || path.IsAbs(e.Path) || path.Clean(e.Path) != e.Path || strings.HasPrefix(e.Path, "../") ||
				e.Path == ".." || strings.Contains(e.Path, "/../") || strings.ContainsRune(e.Path, 0) {
				t.Fatalf("ReadTar() entry path %q, want a clean relative path", e.Path)
			}
			if seen[e.Path] {
				t.Fatalf("ReadTar() entry path %q twice", e.Path)
			}
			seen[e.Path] = true
			if e.Size < 0 || (e.Type != pg.File && e.Size != 0) {
				t.Fatalf("ReadTar() entry %q size %d, type %v", e.Path, e.Size, e.Type)
			}
			if e.Mode&^fs.ModePerm != 0 {
				t.Fatalf("ReadTar() entry %q mode %v, want permission bits only", e.Path, e.Mode)
			}
			switch e.Type {
			case pg.File, pg.Dir:
			case pg.Symlink:
				if _, ok := pg.TablespaceOID(e.Path); !ok || !path.IsAbs(e.LinkTarget) || path.Clean(e.LinkTarget) != e.LinkTarget {
					t.Fatalf("ReadTar() accepted symlink %q -> %q", e.Path, e.LinkTarget)
				}
			default:
				t.Fatalf("ReadTar() entry %q of type %v", e.Path, e.Type)
			}
			for i := strings.LastIndexByte(e.Path, '/'); i > 0; i = strings.LastIndexByte(e.Path[:i], '/') {
				if p := e.Path[:i]; seen[p] && isTablespaceLink(p) {
					t.Fatalf("ReadTar() accepted %q below a tablespace link", e.Path)
				}
			}
			n, err := io.Copy(io.Discard, r)
			if err == nil && n != e.Size {
				t.Fatalf("ReadTar() entry %q yielded %d bytes, want %d", e.Path, n, e.Size)
			}
			return err
		})
	})
}
