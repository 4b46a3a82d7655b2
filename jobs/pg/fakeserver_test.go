package pg_test

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/backstop/backstop/jobs/pg"
)

// fakeServer speaks just enough of the replication protocol to answer one
// BASE_BACKUP with a scripted reply, to test what a broken or hostile
// server can send.
type fakeServer struct {
	ln    net.Listener
	reply []pgproto3.BackendMessage
}

// startFakeServer listens on 127.0.0.1 and answers BASE_BACKUP with reply.
func startFakeServer(t *testing.T, reply []pgproto3.BackendMessage) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln, reply: reply}
	t.Cleanup(func() { ln.Close() })
	go s.serve()
	return fmt.Sprintf("postgres://backstop@%s/postgres?sslmode=disable", ln.Addr())
}

func (s *fakeServer) serve() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.session(conn)
	}
}

func (s *fakeServer) session(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	be := pgproto3.NewBackend(conn, conn)
	if _, err := be.ReceiveStartupMessage(); err != nil {
		return
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0"})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if be.Flush() != nil {
		return
	}
	for {
		msg, err := be.Receive()
		if err != nil {
			return
		}
		q, ok := msg.(*pgproto3.Query)
		if !ok {
			return
		}
		switch {
		case strings.HasPrefix(q.String, "SHOW wal_segment_size"):
			be.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("wal_segment_size"), DataTypeOID: 25}}})
			be.Send(&pgproto3.DataRow{Values: [][]byte{[]byte("16MB")}})
			be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SHOW")})
		case strings.HasPrefix(q.String, "CREATE_REPLICATION_SLOT"):
			be.Send(&pgproto3.CommandComplete{CommandTag: []byte("CREATE_REPLICATION_SLOT")})
		case strings.HasPrefix(q.String, "BASE_BACKUP"):
			for _, m := range s.reply {
				be.Send(m)
			}
		default:
			be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "unexpected " + q.String})
		}
		be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		if be.Flush() != nil {
			return
		}
	}
}

// Builders for the parts of a BASE_BACKUP reply.

func resultSet(cols []string, rows ...[][]byte) []pgproto3.BackendMessage {
	rd := &pgproto3.RowDescription{}
	for _, c := range cols {
		rd.Fields = append(rd.Fields, pgproto3.FieldDescription{Name: []byte(c), DataTypeOID: 25})
	}
	msgs := []pgproto3.BackendMessage{rd}
	for _, r := range rows {
		msgs = append(msgs, &pgproto3.DataRow{Values: r})
	}
	return append(msgs, &pgproto3.CommandComplete{CommandTag: []byte("SELECT")})
}

func position(lsn string) []pgproto3.BackendMessage {
	return resultSet([]string{"recptr", "tli"}, [][]byte{[]byte(lsn), []byte("1")})
}

func mainTablespace() []pgproto3.BackendMessage {
	return resultSet([]string{"spcoid", "spclocation", "size"}, [][]byte{nil, nil, []byte("100")})
}

func newArchive(name, location string) pgproto3.BackendMessage {
	return &pgproto3.CopyData{Data: []byte("n" + name + "\x00" + location + "\x00")}
}

func copyData(data []byte) pgproto3.BackendMessage {
	return &pgproto3.CopyData{Data: append([]byte{'d'}, data...)}
}

func progressMsg(n int64) pgproto3.BackendMessage {
	return &pgproto3.CopyData{Data: binary.BigEndian.AppendUint64([]byte{'p'}, uint64(n))}
}

// fakeManifest lists files (path → size) with the WAL range 0/2000028-0/2000100.
func fakeManifest(files map[string]int) string {
	var b strings.Builder
	b.WriteString("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n")
	first := true
	for p, size := range files {
		if !first {
			b.WriteString(",\n")
		}
		first = false
		fmt.Fprintf(&b, `{ "Path": %q, "Size": %d, "Last-Modified": "2026-11-25 09:56:54 GMT", "Checksum-Algorithm": "CRC32C", "Checksum": "00000000" }`, p, size)
	}
	b.WriteString("\n],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": \"0/2000100\" }\n],\n")
	return manifestWithChecksum(b.String())
}

// reply assembles a whole BASE_BACKUP reply around a copy stream.
func reply(stream ...pgproto3.BackendMessage) []pgproto3.BackendMessage {
	msgs := append(position("0/2000028"), mainTablespace()...)
	msgs = append(msgs, &pgproto3.CopyOutResponse{})
	msgs = append(msgs, stream...)
	msgs = append(msgs, &pgproto3.CopyDone{})
	msgs = append(msgs, position("0/2000100")...)
	return append(msgs, &pgproto3.CommandComplete{CommandTag: []byte("BASE_BACKUP")})
}

func TestBaseBackupFakeServer(t *testing.T) {
	t.Parallel()
	goodTar := buildTar(t, false,
		tarEntry{name: "PG_VERSION", typeflag: tar.TypeReg, body: "15\n"},
		tarEntry{name: "global/", typeflag: tar.TypeDir, mode: 0o700},
		tarEntry{name: "global/pg_control", typeflag: tar.TypeReg, body: strings.Repeat("c", 8192)})
	goodFiles := map[string]int{"PG_VERSION": 3, "global/pg_control": 8192}
	manifest := func(files map[string]int) []pgproto3.BackendMessage {
		return []pgproto3.BackendMessage{&pgproto3.CopyData{Data: []byte("m")}, copyData([]byte(fakeManifest(files)))}
	}
	// stream splits the archive over several messages, as the server does.
	stream := func(archive []byte, extra ...pgproto3.BackendMessage) []pgproto3.BackendMessage {
		msgs := []pgproto3.BackendMessage{newArchive("base.tar", "")}
		for len(archive) > 0 {
			n := min(len(archive), 3000)
			msgs = append(msgs, copyData(archive[:n]), &pgproto3.NoticeResponse{Severity: "NOTICE", Message: "mid-stream"})
			archive = archive[n:]
		}
		msgs = append(msgs, progressMsg(8704))
		return append(msgs, extra...)
	}
	terminated := buildTar(t, true, tarEntry{name: "PG_VERSION", typeflag: tar.TypeReg, body: "15\n"})

	// withTablespace is a reply from a server with tablespace 16385 at /srv/ts.
	withTablespace := func(stream ...pgproto3.BackendMessage) []pgproto3.BackendMessage {
		msgs := append(position("0/2000028"), resultSet([]string{"spcoid", "spclocation", "size"},
			[][]byte{[]byte("16385"), []byte("/srv/ts"), []byte("10")}, [][]byte{nil, nil, []byte("100")})...)
		msgs = append(msgs, &pgproto3.CopyOutResponse{})
		msgs = append(msgs, stream...)
		msgs = append(msgs, &pgproto3.CopyDone{})
		msgs = append(msgs, position("0/2000100")...)
		return append(msgs, &pgproto3.CommandComplete{CommandTag: []byte("BASE_BACKUP")})
	}
	tsTar := buildTar(t, false,
		tarEntry{name: "PG_15_202209061/", typeflag: tar.TypeDir, mode: 0o700},
		tarEntry{name: "PG_15_202209061/5/16386", typeflag: tar.TypeReg, body: "rows"})
	tsFiles := map[string]int{"PG_VERSION": 3, "global/pg_control": 8192, "pg_tblspc/16385/PG_15_202209061/5/16386": 4}
	tsStream := func(archive []byte, files map[string]int) []pgproto3.BackendMessage {
		msgs := stream(goodTar, newArchive("16385.tar", "/srv/ts"), copyData(archive))
		return append(msgs, manifest(files)...)
	}

	tests := []struct {
		name  string
		opts  pg.BackupOptions
		reply []pgproto3.BackendMessage
		want  string // "" for success
	}{
		{"ok", pg.BackupOptions{}, reply(stream(goodTar, manifest(goodFiles)...)...), ""},
		{"ok-with-end-blocks", pg.BackupOptions{}, reply(stream(terminated, manifest(map[string]int{"PG_VERSION": 3})...)...), ""},
		{"data-after-end-blocks", pg.BackupOptions{}, reply(stream(append(terminated, 'x'), manifest(map[string]int{"PG_VERSION": 3})...)...),
			"data after the end of the archive"},
		{"missing-file", pg.BackupOptions{}, reply(stream(goodTar, manifest(map[string]int{"PG_VERSION": 3, "global/pg_control": 8192, "base/1/1": 0})...)...),
			"listed in the manifest never arrived, such as base/1/1"},
		{"wrong-size", pg.BackupOptions{}, reply(stream(goodTar, manifest(map[string]int{"PG_VERSION": 4, "global/pg_control": 8192})...)...),
			"PG_VERSION arrived with 3 bytes, the manifest says 4"},
		{"unlisted-file", pg.BackupOptions{}, reply(stream(goodTar, manifest(map[string]int{"PG_VERSION": 3})...)...),
			"global/pg_control arrived but is not in the manifest"},
		{"no-manifest", pg.BackupOptions{}, reply(stream(goodTar)...), "sent no backup manifest"},
		{"symlink", pg.BackupOptions{}, reply(stream(buildTar(t, false,
			tarEntry{name: "pg_tblspc/16385", typeflag: tar.TypeSymlink, link: "/srv/ts"}), manifest(nil)...)...),
			"announced no such tablespace"},
		{"escape", pg.BackupOptions{}, reply(stream(buildTarLoose(t, []tarEntry{{name: "../../etc/cron.d/x", typeflag: tar.TypeReg, body: "x"}}), manifest(nil)...)...),
			`escapes with ".."`},
		{"tablespace-archive", pg.BackupOptions{}, reply(append([]pgproto3.BackendMessage{newArchive("16385.tar", "/srv/ts")}, manifest(nil)...)...),
			`unexpected archive "16385.tar"`},
		{"tablespace", pg.BackupOptions{}, withTablespace(tsStream(tsTar, tsFiles)...), ""},
		{"tablespace-other-location", pg.BackupOptions{}, withTablespace(append(stream(goodTar, newArchive("16385.tar", "/srv/other"),
			copyData(tsTar)), manifest(tsFiles)...)...), `unexpected archive "16385.tar" (tablespace location "/srv/other")`},
		{"tablespace-archive-missing", pg.BackupOptions{}, withTablespace(stream(goodTar, manifest(goodFiles)...)...),
			"sent no archive for tablespace 16385 at /srv/ts"},
		{"tablespace-outside-version-dir", pg.BackupOptions{}, withTablespace(tsStream(buildTar(t, false,
			tarEntry{name: "postgresql.conf", typeflag: tar.TypeReg, body: "x"}), map[string]int{"pg_tblspc/16385/postgresql.conf": 1})...),
			"pg_tblspc/16385/postgresql.conf is outside the server's version directory"},
		{"tablespace-symlink", pg.BackupOptions{}, withTablespace(tsStream(buildTar(t, false,
			tarEntry{name: "PG_15_202209061/x", typeflag: tar.TypeSymlink, link: "/etc"}), tsFiles)...),
			"symbolic link outside pg_tblspc/<oid> refused"},
		{"tablespace-escape", pg.BackupOptions{}, withTablespace(tsStream(buildTarLoose(t, []tarEntry{{name: "../../../x", typeflag: tar.TypeReg, body: "x"}}), tsFiles)...),
			`escapes with ".."`},
		{"unknown-message", pg.BackupOptions{}, reply(&pgproto3.CopyData{Data: []byte("z")}), `unknown copy data message type 'z'`},
		{"data-before-archive", pg.BackupOptions{}, reply(copyData([]byte("x"))), "data outside an archive"},
		{"error-mid-stream", pg.BackupOptions{}, append(position("0/2000028"), append(mainTablespace(),
			&pgproto3.CopyOutResponse{}, newArchive("base.tar", ""), copyData(goodTar[:1024]),
			&pgproto3.ErrorResponse{Severity: "ERROR", Code: "XX000", Message: "checksum verification failure during base backup"})...),
			"checksum verification failure during base backup"},
		{"tablespace-relative-location", pg.BackupOptions{}, append(position("0/2000028"),
			resultSet([]string{"spcoid", "spclocation", "size"}, [][]byte{[]byte("16385"), nil, []byte("10")}, [][]byte{nil, nil, []byte("100")})...),
			`tablespace 16385 with location ""`},
		{"wal-missing", pg.BackupOptions{WAL: true}, reply(stream(goodTar, manifest(goodFiles)...)...),
			"segment pg_wal/000000010000000000000002, needed from 0/2000028 to 0/2000100, never arrived"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dsn := startFakeServer(t, tt.reply)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			h := newDirHandler(tempDir(t))
			res, err := pg.BaseBackup(ctx, dsn, tt.opts, h)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("BaseBackup(%s) = %v, want success", tt.name, err)
				}
				if res.StartLSN != 0x2000028 || res.EndLSN != 0x2000100 || res.Timeline != 1 {
					t.Errorf("BaseBackup(%s) = %+v, want 0/2000028-0/2000100 on timeline 1", tt.name, res)
				}
				if len(h.progress) != 1 || h.progress[0] != 8704 {
					t.Errorf("BaseBackup(%s) progress = %v, want [8704]", tt.name, h.progress)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("BaseBackup(%s) = %v, want an error mentioning %q", tt.name, err, tt.want)
			}
		})
	}
}
