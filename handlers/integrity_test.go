package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"golang.org/x/net/html"

	"github.com/backstop/backstop/handlers"
	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/store/pgwal"
	"github.com/backstop/backstop/store/repository"
	"github.com/backstop/backstop/web"
)

// integrityApp is a dashboard over two sources with what the overview answers from:
// orders is healthy (streaming, a passing drill, a clean verification), billing has a
// verification finding and a failed drill. Its runner takes no jobs: started jobs stay
// queued for the test to read.
type integrityApp struct {
	*app
	now             time.Time
	repo            *repository.Repo
	svc             *usecase.Service
	orders, billing store.Source
	backups         map[string][]store.Backup
	drill           store.Drill // orders' passing drill
	failed          store.Drill // billing's failed drill
	finding         store.VerifyFinding
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func setupIntegrity(t *testing.T) *integrityApp {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := repository.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository.Init(filepath.Join(dir, "repository"), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range store.Roles {
		name := string(role)
		if role == store.RoleAdmin {
			name = testUser
		}
		if _, err := st.CreateUser(ctx, name, testPassword, role); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hub := jobs.NewHub()
	go hub.Run(ctx)
	paths := usecase.Paths{Home: dir, Repository: filepath.Join(dir, "repository"), RestoreRoot: filepath.Join(dir, "restores")}
	var svc *usecase.Service
	runner := jobs.NewRunner(st, hub, log, jobs.Options{Workers: 1}, jobs.NewVerifyWorker(st, repo, nil),
		jobs.NewDrillWorker(st, jobs.NewPITRWorker(st, repo, "backstop"), sandboxes{&svc}))
	svc = usecase.New(st, repo, usecase.Enqueuer(runner), paths, log)
	routes := handlers.New(st, svc, hub, log).Routes()
	srv := httptest.NewServer(routes)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		st.Close()
	})
	f := &integrityApp{app: &app{srv: srv, routes: routes, store: st, runner: runner}, now: time.Now().UTC(),
		backups: map[string][]store.Backup{}, repo: repo, svc: svc}
	f.orders = f.source(t, repo, "orders", "7300000000000000001")
	f.billing = f.source(t, repo, "billing", "7300000000000000002")

	d, err := st.StartDrill(ctx, f.orders.ID, 0, f.now.Add(-50*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	d.RTO, d.BackupID = 48*time.Second+500*time.Millisecond, f.backups["orders"][0].ID
	d.Checks = []string{"reached consistency and promoted", "pg_amcheck on every database: no corruption"}
	d.Tables = map[string]int64{"postgres.public.t": 10}
	if f.drill, err = st.FinishDrill(ctx, d); err != nil {
		t.Fatal(err)
	}
	run, err := st.StartVerifyRun(ctx, f.orders.ID, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	run.PacksChecked, run.PacksTotal, run.BytesRead = 3, 9, 5<<20
	if _, err := st.FinishVerifyRun(ctx, run, nil, nil, ""); err != nil {
		t.Fatal(err)
	}

	d, err = st.StartDrill(ctx, f.billing.ID, 0, f.now.Add(-40*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	d.Error = "pg_amcheck found corruption in index t_pkey"
	if f.failed, err = st.FinishDrill(ctx, d); err != nil {
		t.Fatal(err)
	}
	run, err = st.StartVerifyRun(ctx, f.billing.ID, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	f.finding = store.VerifyFinding{SourceID: f.billing.ID, BackupID: f.backups["billing"][1].ID, Kind: "corrupt-blob",
		Object: "ab12cd34ef56ab12cd34ef56", Pack: "pk-77", Path: "base/16384/1259", Reason: "does not authenticate"}
	if _, err := st.FinishVerifyRun(ctx, run, []store.VerifyFinding{f.finding}, nil, ""); err != nil {
		t.Fatal(err)
	}
	return f
}

// sandboxes lets the drill worker ask the service, built after it, for sandboxes.
type sandboxes struct{ svc **usecase.Service }

func (s sandboxes) Sandbox(ctx context.Context, src store.Source) (string, int, error) {
	return (*s.svc).Sandbox(ctx, src)
}

// source registers a source with two complete backups, the WAL since the first in the
// repository and the catalog, its archiver streaming and a few lag samples.
func (f *integrityApp) source(t *testing.T, repo *repository.Repo, name, sysID string) store.Source {
	t.Helper()
	ctx := t.Context()
	st := f.store
	src, err := st.CreateSource(ctx, store.SourceParams{Name: name, DSN: "postgres://backstop@127.0.0.1:1/postgres",
		SystemIdentifier: sysID, PGVersion: 150004, Timeline: 1})
	if err != nil {
		t.Fatal(err)
	}
	const segSize = 16 << 20
	for i, seg := range []uint64{2, 4} {
		started := f.now.Add(-time.Duration(2-i) * time.Hour)
		start := pgwal.SegmentStart(seg, segSize)
		b, err := st.CreateBackup(ctx, store.BackupParams{SourceID: src.ID, RepoID: fmt.Sprintf("%s-%d", name, i), StartedAt: started,
			StartLSN: (start + 0x28).String(), Timeline: 1, SystemIdentifier: sysID})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CompleteBackup(ctx, b.ID, store.BackupCompletion{EndLSN: (start + 0x200).String(),
			Stats: store.BackupStats{SourceBytes: int64(6+i) << 30, StoredBytesNew: int64(100+i) << 20}}); err != nil {
			t.Fatal(err)
		}
		if b, err = st.Backup(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		f.backups[name] = append(f.backups[name], b)
	}
	for seg := uint64(2); seg <= 5; seg++ {
		wname := pgwal.SegmentName(1, seg, segSize)
		if _, _, err := repo.PutWAL(ctx, sysID, wname, io.LimitReader(zeroReader{}, segSize), segSize); err != nil {
			t.Fatal(err)
		}
		start := pgwal.SegmentStart(seg, segSize)
		at := f.now.Add(-time.Duration(6-seg) * 40 * time.Minute)
		if _, err := st.RecordWAL(ctx, store.WALFileParams{SourceID: src.ID, Name: wname, Kind: store.WALSegment, Timeline: 1,
			SegNo: int64(seg), StartLSN: start.String(), EndLSN: (start + pglogrepl.LSN(segSize)).String(), Size: segSize,
			Commits: 3, FirstCommitAt: at.Add(-30 * time.Minute), LastCommitAt: at, Via: store.WALViaStream}); err != nil {
			t.Fatal(err)
		}
	}
	caught := f.now.Add(-2 * time.Second)
	if err := st.SaveArchiverState(ctx, store.ArchiverState{SourceID: src.ID, State: store.ArchiverStreaming,
		Since: f.now.Add(-3 * time.Hour), FlushedLSN: "0/6000000", ServerLSN: "0/6001000", BehindBytes: 4096, CaughtUpAt: &caught,
		SlotName: "backstop_" + name}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetPolicy(ctx, store.Policy{SourceID: src.ID, TimeZone: "UTC", RPO: 5 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	for m := 30; m >= 0; m-- {
		if err := st.RecordSourceSample(ctx, store.SourceSample{SourceID: src.ID, At: f.now.Add(-time.Duration(m) * time.Minute),
			LagSeconds: float64(m%4) / 2, LagBytes: int64(m%5) << 12}); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// signedIn returns a client signed in as role.
func (f *integrityApp) signedIn(t *testing.T, role store.Role) *http.Client {
	t.Helper()
	c := f.client(t)
	if role == store.RoleAdmin {
		f.login(t, c)
	} else {
		f.loginAs(t, c, string(role))
	}
	return c
}

// testIDText returns the text of the first element with data-testid id inside the
// element with id scope ("" for the whole page), a space between elements.
func testIDText(t *testing.T, page, scope, id string) string {
	t.Helper()
	root, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	find := func(n *html.Node, key, val string) *html.Node {
		var found *html.Node
		var walk func(*html.Node)
		walk = func(n *html.Node) {
			for _, a := range n.Attr {
				if found == nil && a.Key == key && a.Val == val {
					found = n
				}
			}
			for c := n.FirstChild; c != nil && found == nil; c = c.NextSibling {
				walk(c)
			}
		}
		walk(n)
		return found
	}
	if scope != "" {
		if root = find(root, "id", scope); root == nil {
			t.Fatalf("no element with id %q", scope)
		}
	}
	n := find(root, "data-testid", id)
	if n == nil {
		return ""
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
		if n.Type == html.ElementNode {
			b.WriteByte(' ')
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

func TestOverviewAnswersPerSource(t *testing.T) {
	t.Parallel()
	f := setupIntegrity(t)
	_, page := f.get(t, f.signedIn(t, store.RoleAuditor), "/")

	orders, billing := fmt.Sprintf("source-%d", f.orders.ID), fmt.Sprintf("source-%d", f.billing.ID)
	checks := []struct{ scope, id, want string }{
		{orders, "restore-answer", "Can I restore now? Yes"},
		{billing, "restore-answer", "Can I restore now? No"},
		{billing, "restore-answer", "Verification found 1 damaged or missing objects"},
		// The window: from the oldest backup's consistency to the newest commit.
		{orders, "restorable", "→"},
		{orders, "rpo", "behind objective 5 min"},
		{orders, "rpo", "4.0 KiB behind"},
		{orders, "rto", "48 s proven"},
		{orders, "rto", "by a restore to " + web.UTC(f.drill.TargetAt)},
		{billing, "rto", "Never drilled"},
		{billing, "rto", "The last drill failed"},
		{orders, "last-verification", "Clean Routine, 5.0 MiB read"},
		{billing, "last-verification", "1 finding Deep"},
	}
	for _, c := range checks {
		if got := testIDText(t, page, c.scope, c.id); !strings.Contains(got, c.want) {
			t.Errorf("%s %s = %q, want it to contain %q", c.scope, c.id, got, c.want)
		}
	}
	// Times are relative, with the exact UTC time on hover.
	w, _, err := jobs.NewWindowCache(f.store, f.repo).Window(t.Context(), f.orders)
	if err != nil {
		t.Fatal(err)
	}
	if w.Latest.IsZero() {
		t.Fatal("orders has no window")
	}
	for _, at := range []time.Time{w.Earliest, w.Latest, *f.drill.FinishedAt} {
		if !strings.Contains(page, `title="`+web.UTC(at)+`" data-rel`) {
			t.Errorf("overview has no relative time with title %q", web.UTC(at))
		}
	}
	// Three charts per card, each with its data and its words.
	for _, id := range []string{"lag-chart", "duration-chart", "size-chart"} {
		if n := strings.Count(page, `data-testid="`+id+`"`); n != 2 {
			t.Errorf("%s: %d on the page, want one per source", id, n)
		}
	}
	for _, id := range []string{"lag", "duration", "size"} {
		script := regexp.MustCompile(`<script id="source-` + fmt.Sprint(f.orders.ID) + `-` + id + `-data" type="application/json">([^<]*)</script>`).FindStringSubmatch(page)
		if script == nil {
			t.Errorf("no %s chart data for orders", id)
			continue
		}
		var spec struct {
			X []int64
			Y [][]*float64
		}
		if err := json.Unmarshal([]byte(script[1]), &spec); err != nil || len(spec.X) < 2 {
			t.Errorf("%s chart data = %v (%v), want at least two points", id, script[1], err)
		}
	}
	for _, want := range []string{"The newest backup read 7.0 GiB and stored 101 MiB new.", "The last 2 took", "over the last 24 h"} {
		if !strings.Contains(page, want) {
			t.Errorf("chart fallbacks lack %q", want)
		}
	}
}

func TestSourcePageVerificationAndDrills(t *testing.T) {
	t.Parallel()
	f := setupIntegrity(t)
	_, page := f.get(t, f.signedIn(t, store.RoleOnCall), fmt.Sprintf("/sources/%d", f.billing.ID))
	finding := testIDText(t, page, "", "verify-finding")
	for _, want := range []string{fmt.Sprintf("Backup %d", f.finding.BackupID), f.finding.Path, f.finding.Object, f.finding.Pack, f.finding.Reason} {
		if !strings.Contains(finding, want) {
			t.Errorf("finding = %q, want it to name %q", finding, want)
		}
	}
	if run := testIDText(t, page, "", "verify-run"); !strings.Contains(run, "Deep") || !strings.Contains(run, "1 finding") {
		t.Errorf("verification run = %q, want a deep run with 1 finding", run)
	}
	drill := testIDText(t, page, "", "drill")
	for _, want := range []string{web.UTC(f.failed.TargetAt), "Failed", "pg_amcheck found corruption in index t_pkey"} {
		if !strings.Contains(drill, want) {
			t.Errorf("drill = %q, want %q", drill, want)
		}
	}
	_, page = f.get(t, f.signedIn(t, store.RoleOnCall), fmt.Sprintf("/sources/%d", f.orders.ID))
	drill = testIDText(t, page, "", "drill")
	for _, want := range []string{web.UTC(f.drill.TargetAt), fmt.Sprintf("Backup %d", f.drill.BackupID), "48 s", "pg_amcheck on every database",
		"1 table counted", "Passed"} {
		if !strings.Contains(drill, want) {
			t.Errorf("drill = %q, want %q", drill, want)
		}
	}
	if run := testIDText(t, page, "", "verify-run"); !strings.Contains(run, "Routine") || !strings.Contains(run, "3 of 9") || !strings.Contains(run, "Clean") {
		t.Errorf("verification run = %q, want a clean routine run that read 3 of 9 packs", run)
	}
}

func TestVerifyAndDrillButtons(t *testing.T) {
	t.Parallel()
	f := setupIntegrity(t)
	page := fmt.Sprintf("/sources/%d", f.orders.ID)
	buttons := []string{`data-testid="verify-now"`, `data-testid="verify-deep"`, `data-testid="drill-now"`}

	// An auditor sees the history and no button, and is refused.
	auditor := f.signedIn(t, store.RoleAuditor)
	_, body := f.get(t, auditor, page)
	for _, b := range buttons {
		if strings.Contains(body, b) {
			t.Errorf("auditor sees %s", b)
		}
	}
	if !strings.Contains(body, `data-testid="drill"`) || !strings.Contains(body, `data-testid="verify-run"`) {
		t.Error("auditor does not see the drills and verifications")
	}
	for _, action := range []string{"/verify", "/verify?deep=1", "/drill"} {
		if resp := f.postForm(t, auditor, page+action, nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s as auditor = %d, want 403", action, resp.StatusCode)
		}
	}
	if js, err := f.store.Jobs(t.Context(), store.JobFilter{Limit: 10}); err != nil || len(js) != 0 {
		t.Fatalf("refused posts left jobs %v (%v)", js, err)
	}

	// On-call sees the buttons; each starts a job and leads to its page.
	oncall := f.signedIn(t, store.RoleOnCall)
	_, body = f.get(t, oncall, page)
	for _, b := range buttons {
		if !strings.Contains(body, b) {
			t.Errorf("on-call does not see %s", b)
		}
	}
	start := func(path string, c *http.Client) store.Job {
		t.Helper()
		resp := f.postForm(t, c, path, url.Values{})
		loc := resp.Header.Get("Location")
		var id int64
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/jobs/") {
			t.Fatalf("POST %s = %d to %q, want 303 to a job", path, resp.StatusCode, loc)
		}
		fmt.Sscanf(loc, "/jobs/%d", &id)
		j, err := f.store.Job(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	j := start(page+"/verify?deep=1", oncall)
	var args jobs.VerifyArgs
	if err := json.Unmarshal(j.Args, &args); err != nil || j.Kind != jobs.KindVerify || !args.Deep || args.SourceID != f.orders.ID {
		t.Errorf("deep verify started %s %s (%v), want a deep verification of orders", j.Kind, j.Args, err)
	}
	// A second verification while one is queued leads to the one queued.
	if again := start(page+"/verify", oncall); again.ID != j.ID {
		t.Errorf("second verification = job %d, want the queued job %d", again.ID, j.ID)
	}
	_, body = f.get(t, oncall, page)
	if !strings.Contains(body, fmt.Sprintf(`href="/jobs/%d" data-testid="verify-job"`, j.ID)) {
		t.Error("the source page does not link the queued verification")
	}
	d := start(page+"/drill", f.signedIn(t, store.RoleOperator))
	if d.Kind != jobs.KindDrill || d.SourceID != f.orders.ID {
		t.Errorf("drill started %s of source %d", d.Kind, d.SourceID)
	}
	es, err := f.store.AuditEntries(t.Context(), 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range es {
		if !strings.HasPrefix(e.Action, "user.") {
			actions = append(actions, e.Action)
		}
	}
	if got := strings.Join(actions, ","); got != "drill.start,verify.start" {
		t.Errorf("audit = %q, want drill.start,verify.start", got)
	}
}

// TestDrillRefusedWithNothingRestorable: a source with no window is not drilled; the
// source page says why and nothing is started.
func TestDrillRefusedWithNothingRestorable(t *testing.T) {
	t.Parallel()
	f := setupIntegrity(t)
	src, err := f.store.CreateSource(t.Context(), store.SourceParams{Name: "empty", DSN: "postgres://backstop@127.0.0.1:1/postgres",
		SystemIdentifier: "7300000000000000009", PGVersion: 150004})
	if err != nil {
		t.Fatal(err)
	}
	c := f.signedIn(t, store.RoleOperator)
	page := fmt.Sprintf("/sources/%d", src.ID)
	resp := f.postForm(t, c, page+"/drill", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != page {
		t.Fatalf("POST drill of an empty source = %d to %q, want 303 back to %s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	_, body := f.get(t, c, page)
	if !strings.Contains(body, "has no restorable window yet") {
		t.Error("the source page does not say why the drill was refused")
	}
	if !regexp.MustCompile(`data-testid="drill-now" disabled`).MatchString(body) {
		t.Error("Run a drill is enabled with nothing restorable")
	}
	if js, _ := f.store.Jobs(t.Context(), store.JobFilter{Limit: 10}); len(js) != 0 {
		t.Errorf("a refused drill started %d jobs", len(js))
	}
}
