package handlers_test

import (
	"net/http"
	"net/url"
	"testing"
)

// TestPasswordChangeIsThrottled: someone holding a stolen session guesses the account's
// password through the password change form, which checks the current password. Wrong
// guesses count as failed sign-ins: past the free ones, even the right password is
// refused, and the password stays as it was.
func TestPasswordChangeIsThrottled(t *testing.T) {
	t.Parallel()
	a := setup(t)
	c := a.client(t)
	a.login(t, c)
	newPassword := "a brand new long password"
	for i := 1; i <= 6; i++ {
		resp := a.postForm(t, c, "/account/password", url.Values{"current": {"guess"}, "password": {newPassword}})
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("password change with a wrong current password #%d = %d, want 422", i, resp.StatusCode)
		}
	}
	resp := a.postForm(t, c, "/account/password", url.Values{"current": {testPassword}, "password": {newPassword}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("password change after 6 wrong guesses = %d (Retry-After %q), want 429", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if _, err := a.store.Authenticate(t.Context(), testUser, testPassword); err != nil {
		t.Errorf("the password changed while the account was locked out: %v", err)
	}
}
