package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/backstop/backstop/jobs"
	"github.com/backstop/backstop/jobs/notify"
	"github.com/backstop/backstop/jobs/usecase"
	"github.com/backstop/backstop/store"
	"github.com/backstop/backstop/web"
)

// deliveriesShown is how many of a channel's latest delivery attempts its card lists.
const deliveriesShown = 5

const channelsPath = "/settings/notifications"

// showChannels is Settings → Notifications: the channels with their latest deliveries.
func (h *Handler) showChannels(w http.ResponseWriter, r *http.Request) error {
	vm, err := h.channelsVM(r)
	if err != nil {
		return err
	}
	return h.page(w, r, "Notifications", web.NavSettings, web.ChannelsPage(vm))
}

func (h *Handler) channelsVM(r *http.Request) (web.ChannelsVM, error) {
	ctx := r.Context()
	cs, err := h.svc.Channels(ctx, actorOf(r))
	if err != nil {
		return web.ChannelsVM{}, err
	}
	vm := web.ChannelsVM{Now: h.now(), Webhook: emptyChannelForm(), Slack: emptyChannelForm(), Email: emptyChannelForm()}
	for _, c := range cs {
		ds, err := h.store.Deliveries(ctx, c.ID, deliveriesShown)
		if err != nil {
			return web.ChannelsVM{}, err
		}
		cv := web.ChannelVM{Name: c.Name, Kind: c.Kind, MinSeverity: c.MinSeverity, Enabled: c.Enabled, CreatedAt: c.CreatedAt}
		for _, d := range ds {
			cv.Deliveries = append(cv.Deliveries, web.DeliveryVM{At: d.At, Event: d.Event, AlertID: d.AlertID,
				Attempt: d.Attempt, Error: d.Error})
		}
		vm.Channels = append(vm.Channels, cv)
	}
	return vm, nil
}

func emptyChannelForm() web.ChannelFormVM { return web.ChannelFormVM{Errors: map[string]string{}} }

// addChannel adds a channel of the kind the form is for, through the use case, which
// authorizes, checks and audits it. A webhook whose secret Backstop generated is shown
// with it, once, on the page this answers with; other channels redirect with a flash.
// Errors come back next to their fields, and nothing is stored.
func (h *Handler) addChannel(w http.ResponseWriter, r *http.Request) error {
	kind := r.PostFormValue("kind")
	field := func(name string) string { return strings.TrimSpace(r.PostFormValue(name)) }
	form := web.ChannelFormVM{Name: field("name"), MinSeverity: field("min_severity"), URL: field("url"),
		Addr: field("addr"), From: field("from"), To: field("to"), Username: field("username"), TLS: field("tls"),
		Errors: map[string]string{}}
	in := usecase.ChannelInput{Name: form.Name, Kind: kind, MinSeverity: form.MinSeverity}
	switch kind {
	case jobs.ChannelWebhook:
		in.Config = jobs.ChannelConfig{URL: form.URL, Secret: r.PostFormValue("secret")}
	case jobs.ChannelSlack:
		in.Config = jobs.ChannelConfig{URL: form.URL}
	case jobs.ChannelEmail:
		in.Config = jobs.ChannelConfig{SMTP: &notify.SMTPConfig{Addr: form.Addr, From: form.From, To: addressList(form.To),
			Username: form.Username, Password: r.PostFormValue("password"), TLS: form.TLS}}
	}
	generated := kind == jobs.ChannelWebhook && in.Config.Secret == ""
	c, cfg, err := h.svc.AddChannel(r.Context(), actorOf(r), in)
	var ie *usecase.InputError
	var ve *store.ValidationError
	switch {
	case errors.As(err, &ie):
		if _, ok := ie.Fields["kind"]; ok {
			return badRequest(ie.Fields["kind"])
		}
		for k, m := range ie.Fields {
			form.Errors[k] = fieldMessage(k, m)
		}
	case errors.As(err, &ve):
		form.Errors[ve.Field] = usecase.Sentence(ve.Message)
	case err != nil:
		return err
	default:
		if generated {
			vm, err := h.channelsVM(r)
			if err != nil {
				return err
			}
			vm.Created, vm.CreatedSecret = c.Name, cfg.Secret
			return h.page(w, r, "Notifications", web.NavSettings, web.ChannelsPage(vm))
		}
		setFlash(w, web.FlashSuccess, fmt.Sprintf("Added %s %s: it gets %s. Send test checks that they arrive.",
			channelPhrases[c.Kind], c.Name, web.SeverityScope(c.MinSeverity)))
		http.Redirect(w, r, channelsPath, http.StatusSeeOther)
		return nil
	}
	vm, err := h.channelsVM(r)
	if err != nil {
		return err
	}
	switch kind {
	case jobs.ChannelWebhook:
		vm.Webhook = form
	case jobs.ChannelSlack:
		vm.Slack = form
	default:
		vm.Email = form
	}
	return h.pageStatus(w, r, http.StatusUnprocessableEntity, "Notifications", web.NavSettings, web.ChannelsPage(vm))
}

// addressList splits the To field at commas and semicolons.
func addressList(s string) []string {
	var out []string
	for _, a := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == '\n' }) {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// channelLabels are the channel form's fields as their labels name them.
var channelLabels = map[string]string{
	"name": "The name", "url": "The URL", "secret": "The secret", "addr": "The server", "from": "From",
	"to": "To", "username": "The user name", "password": "The password", "tls": "Encryption",
}

// fieldMessage makes a problem that continues its field's name ("Is required.") a
// sentence of its own ("The URL is required.").
func fieldMessage(field, msg string) string {
	label, ok := channelLabels[field]
	if !ok {
		return msg
	}
	for _, verb := range []string{"Is ", "Must ", "Has ", "Needs "} {
		if strings.HasPrefix(msg, verb) {
			return label + " " + strings.ToLower(msg[:1]) + msg[1:]
		}
	}
	return msg
}

// channelPhrases name a channel of each kind in a sentence.
var channelPhrases = map[string]string{
	jobs.ChannelWebhook: "the webhook", jobs.ChannelSlack: "the Slack webhook", jobs.ChannelEmail: "the email channel",
}

// channelName is the {name} of a channel's route. chi matches the escaped path when it
// has escapes (a name may hold a slash), so the parameter is unescaped then.
func channelName(r *http.Request) (string, error) {
	name := chi.URLParam(r, "name")
	if r.URL.RawPath == "" {
		return name, nil
	}
	n, err := url.PathUnescape(name)
	if err != nil {
		return "", notFound("Channel")
	}
	return n, nil
}

// testChannel sends a test notification now and says how it went.
func (h *Handler) testChannel(w http.ResponseWriter, r *http.Request) error {
	name, err := channelName(r)
	if err != nil {
		return err
	}
	err = h.svc.TestChannel(r.Context(), actorOf(r), name)
	var fe *usecase.ForbiddenError
	switch {
	case err == nil:
		setFlash(w, web.FlashSuccess, fmt.Sprintf("Delivered: the test notification reached %s.", name))
	case errors.As(err, &fe):
		return err
	case errors.Is(err, store.ErrNotFound):
		return notFound("Channel")
	default:
		setFlash(w, web.FlashError, fmt.Sprintf("The test notification to %s failed: %s", name, usecase.Sentence(err.Error())))
	}
	http.Redirect(w, r, channelsPath, http.StatusSeeOther)
	return nil
}

// removeChannel removes a channel (admins only: the use case refuses others).
func (h *Handler) removeChannel(w http.ResponseWriter, r *http.Request) error {
	name, err := channelName(r)
	if err != nil {
		return err
	}
	if err := h.svc.RemoveChannel(r.Context(), actorOf(r), name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound("Channel")
		}
		return err
	}
	setFlash(w, web.FlashSuccess, fmt.Sprintf("Removed the channel %s: alerts no longer go to it.", name))
	http.Redirect(w, r, channelsPath, http.StatusSeeOther)
	return nil
}
