package pg_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/backstop/backstop/jobs/pg"
)

func TestMaskDSN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"url", "postgres://app:s3cret@db:5432/orders?sslmode=disable", "postgres://app:*****@db:5432/orders?sslmode=disable"},
		{"postgresql-scheme", "postgresql://app:s3cret@db/orders", "postgresql://app:*****@db/orders"},
		{"url-no-password", "postgres://app@db/orders", "postgres://app@db/orders"},
		{"url-empty-password", "postgres://app:@db/orders", "postgres://app:@db/orders"},
		{"url-escaped-password", "postgres://app:p%40ss%2Fw@db/orders", "postgres://app:*****@db/orders"},
		{"url-query-password", "postgres://db/orders?user=app&password=s3cret&sslmode=require", "postgres://db/orders?user=app&password=*****&sslmode=require"},
		{"url-query-encoded-key", "postgres://db/orders?pass%77ord=s3cret", "postgres://db/orders?pass%77ord=*****"},
		{"url-sslpassword", "postgres://db/orders?sslpassword=keypw", "postgres://db/orders?sslpassword=*****"},
		{"url-multi-host", "postgres://app:s3cret@h1:5432,h2:5433/orders", "postgres://app:*****@h1:5432,h2:5433/orders"},
		{"url-ipv6", "postgres://app:s3cret@[::1]:5432/orders", "postgres://app:*****@[::1]:5432/orders"},
		{"url-at-in-query", "postgres://db/orders?application_name=a@b", "postgres://db/orders?application_name=a@b"},
		{"url-unescaped-at", "postgres://app:p@ss@db/orders", "postgres://app:*****@*****@db/orders"},
		{"url-unescaped-slash", "postgres://app:pa/ss@db/orders", "postgres://app:*****@db/orders"},
		{"url-unescaped-colon", "postgres://app:pa:ss@db/orders", "postgres://app:*****@db/orders"},
		{"kv", "host=db user=app password=s3cret dbname=orders", "host=db user=app password=***** dbname=orders"},
		{"kv-quoted", "host=db password='s3 cr\\'et' dbname=orders", "host=db password='*****' dbname=orders"},
		{"kv-spaces", "host=db password = s3cret", "host=db password = *****"},
		{"kv-escaped-space", `password=s3\ cret host=db`, "password=***** host=db"},
		{"kv-unterminated", "host=db password='s3cret", "host=db password=*****"},
		{"kv-no-password", "host=db user=app", "host=db user=app"},
		{"kv-sslpassword", "sslpassword=keypw host=db", "sslpassword=***** host=db"},
		{"url-unclosed-bracket", "postgres://[/0?password=s3cret&user=0", "postgres://[/0?password=*****&user=0"},
		{"url-stray-password", "postgres://app:/s3cret@db/orders", "postgres://app:*****@db/orders"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := pg.MaskDSN(tt.in); got != tt.want {
				t.Errorf("MaskDSN(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// marker starts every password in FuzzMaskDSN: it appears nowhere else,
// in any encoding, so finding it in the output means a password leaked.
const marker = "Zq7K"

// FuzzMaskDSN builds valid connection strings in both forms around a
// password and checks that MaskDSN hides it and changes nothing else.
func FuzzMaskDSN(f *testing.F) {
	f.Add("app", "s3cret", "db.example.com", "orders", uint8(0))
	f.Add("app", "p@ss/w:rd?&=", "127.0.0.1", "db", uint8(1))
	f.Add("a b", "it's \\ quoted", "h", "x y", uint8(2))
	f.Add("", "'", "", "", uint8(3))
	f.Add("0", "0", "0", "@", uint8(0))
	f.Fuzz(func(t *testing.T, user, password, host, db string, form uint8) {
		password = marker + password
		for _, s := range []string{user, host, db} {
			if strings.Contains(s, marker) || strings.ContainsRune(s, 0) {
				return
			}
		}
		if strings.ContainsRune(password, 0) || !hostName(host) {
			return
		}
		var dsn string
		switch form % 4 {
		case 0: // URL with the password in the user info
			u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: host, Path: "/" + db}
			dsn = u.String()
		case 1: // URL with the password in the query
			u := url.URL{Scheme: "postgres", Host: host, Path: "/" + db,
				RawQuery: url.Values{"user": {user}, "password": {password}}.Encode()}
			dsn = u.String()
		case 2, 3: // keyword/value, quoted or not
			q := func(s string) string {
				s = strings.ReplaceAll(s, `\`, `\\`)
				return "'" + strings.ReplaceAll(s, "'", `\'`) + "'"
			}
			if form%4 == 3 {
				q = func(s string) string {
					if s == "" {
						return "''"
					}
					var b strings.Builder
					for _, c := range []byte(s) {
						if c == '\\' || c == '\'' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' {
							b.WriteByte('\\')
						}
						b.WriteByte(c)
					}
					return b.String()
				}
			}
			dsn = "host=" + q(host) + " user=" + q(user) + " password=" + q(password) + " dbname=" + q(db)
		}
		masked := pg.MaskDSN(dsn)
		if strings.Contains(masked, marker) {
			t.Fatalf("MaskDSN(%q) = %q, which still holds the password", dsn, masked)
		}
		want, err := pgconn.ParseConfig(dsn)
		if err != nil {
			return
		}
		got, err := pgconn.ParseConfig(masked)
		if err != nil {
			t.Fatalf("MaskDSN(%q) = %q, which does not parse: %v", dsn, masked, err)
		}
		if got.Password != "*****" || got.Host != want.Host || got.Port != want.Port || got.User != want.User || got.Database != want.Database {
			t.Fatalf("MaskDSN(%q) = %q, which parses to host %q port %d user %q db %q password %q, want %q %d %q %q \"*****\"",
				dsn, masked, got.Host, got.Port, got.User, got.Database, got.Password, want.Host, want.Port, want.User, want.Database)
		}
	})
}

// hostName reports whether h looks like a host name: DSNs with odd hosts
// are ambiguous, and MaskDSN masks more of them than the password.
func hostName(h string) bool {
	if h == "" {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// FuzzMaskDSNAny feeds MaskDSN arbitrary strings: whenever the input parses
// with a password, the output must not yield that password.
func FuzzMaskDSNAny(f *testing.F) {
	for _, s := range []string{
		"postgres://app:s3cret@db:5432/orders?sslmode=disable",
		"postgres://db/orders?password=s3cret",
		"host=db password='s3 cr\\'et'",
		"postgres://app:p@ss@db/orders",
		"postgres://u:/x@h/db",
		"password= host=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		masked := pg.MaskDSN(dsn)
		in, err := pgconn.ParseConfig(dsn)
		if err != nil || in.Password == "" || in.Password == "*****" {
			return
		}
		out, err := pgconn.ParseConfig(masked)
		if err != nil {
			return
		}
		if out.Password == in.Password {
			t.Fatalf("MaskDSN(%q) = %q, which still yields password %q", dsn, masked, in.Password)
		}
		if out.Password != "" && out.Password != "*****" {
			t.Fatalf("MaskDSN(%q) = %q, which yields password %q, want \"*****\" or none", dsn, masked, out.Password)
		}
	})
}
