// Alerts: what is firing or pending now (acknowledge, silence), the history,
// the rules, the channels (add, send a test) and the silences. The alert list
// is read from the API once when the screen opens (and after each stream
// reconnect); from then on the stream's `alert` frames keep it current, so a
// new firing alert shows the moment the hub decides it.

import { useContext, useEffect, useMemo, useState } from 'preact/hooks';
import { atLeast, RoleContext } from '../access';
import { Badge, Empty, ErrorBox } from '../components/bits';
import { ago, dateTime, durationMs } from '../format';
import { hostUrl, Link } from '../router';
import { beforeUrl } from '../past';
import { fleet } from '../store';
import { useFleet } from '../useFleet';
import { alertsApi, CHANNEL_KINDS, EVENT_KINDS, RULE_KINDS, THRESHOLD_KINDS, type AlertRecord, type ChannelRecord, type RuleRecord, type SilenceRecord } from './AlertsApi';

const TABS = ['active', 'history', 'rules', 'channels', 'silences'] as const;
type Tab = (typeof TABS)[number];

/** Polls `load` every `ms` and on `deps` changes; keeps the last answer meanwhile. */
export function usePolled<T>(load: () => Promise<T>, ms: number, deps: unknown[] = []): { data: T | null; error: string; reload: () => void } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState('');
  const [gen, setGen] = useState(0);
  useEffect(() => {
    let live = true;
    const run = () =>
      load().then(
        (d) => {
          if (!live) return;
          setData(d);
          setError('');
        },
        (err) => live && setError((err as Error).message),
      );
    run();
    const t = setInterval(run, ms);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [...deps, gen]);
  return { data, error, reload: () => setGen((g) => g + 1) };
}

/** The alerts as the API listed them when this opened (again after each stream
 * snapshot: a reconnect may have missed frames), with every later stream
 * `alert` frame applied: new ones added, changed ones replaced, and, for the
 * active list, resolved and dropped ones removed. */
export function useLiveAlerts(history: boolean): { data: AlertRecord[] | null; error: string; reload: () => void } {
  const [base, setBase] = useState<{ list: AlertRecord[]; seq: number } | null>(null);
  const [error, setError] = useState('');
  const [gen, setGen] = useState(0);
  useEffect(() => {
    let live = true;
    const seq = fleet.alertSeq;
    alertsApi.list(history).then(
      (list) => {
        if (!live) return;
        setBase({ list, seq });
        setError('');
      },
      (err) => live && setError((err as Error).message),
    );
    return () => {
      live = false;
    };
  }, [history, fleet.snapshots, gen]);
  const data = useMemo(() => {
    if (!base) return null;
    const byId = new Map(base.list.map((a) => [a.id, a]));
    for (const { alert, seq } of fleet.liveAlerts.values()) {
      if (seq <= base.seq) continue;
      const known = byId.get(alert.id);
      if (alert.state === 'dropped' || (!history && alert.state === 'resolved')) {
        byId.delete(alert.id);
        continue;
      }
      // Silences are matched by the API's list; a frame does not know them.
      byId.set(alert.id, { ...alert, state: alert.state, silenced: known?.silenced ?? false });
    }
    return [...byId.values()].sort((a, b) => b.id - a.id);
  }, [base, fleet.alertSeq]);
  return { data, error, reload: () => setGen((g) => g + 1) };
}

function hostName(id: string): string {
  return fleet.nodes.get(id)?.hostname || id;
}

function stateBadge(a: AlertRecord) {
  if (a.state === 'resolved') return <Badge text="resolved" tone="ok" />;
  if (a.acked_ms) return <Badge text={`${a.state} · acknowledged`} tone="muted" />;
  if (a.silenced) return <Badge text={`${a.state} · silenced`} tone="muted" />;
  return <Badge text={a.state} tone={a.state === 'firing' ? 'bad' : 'warn'} />;
}

function AckForm({ alert, onDone }: { alert: AlertRecord; onDone: () => void }) {
  const [open, setOpen] = useState(false);
  const [error, setError] = useState('');
  if (!open)
    return (
      <button type="button" class="btn btn-small" onClick={() => setOpen(true)} data-testid="ack-open">
        Acknowledge
      </button>
    );
  const submit = async (e: Event) => {
    e.preventDefault();
    const comment = String(new FormData(e.currentTarget as HTMLFormElement).get('comment') || '');
    try {
      await alertsApi.ack(alert.id, comment);
      setOpen(false);
      onDone();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <form class="form form-row inline-form" onSubmit={submit} data-testid="ack-form">
      <label class="field">
        <span>Comment</span>
        <input name="comment" maxLength={500} placeholder="who is on it" autoFocus data-testid="ack-comment" />
      </label>
      <button class="btn btn-primary btn-small" type="submit" data-testid="ack-submit">
        Acknowledge
      </button>
      {error && <p class="form-error" role="alert">{error}</p>}
    </form>
  );
}

function SilenceForm({ alert, onDone }: { alert: AlertRecord; onDone: () => void }) {
  const [open, setOpen] = useState(false);
  const [error, setError] = useState('');
  if (!open)
    return (
      <button type="button" class="btn btn-small" onClick={() => setOpen(true)} data-testid="silence-open">
        Silence
      </button>
    );
  const submit = async (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    try {
      await alertsApi.addSilence({ rule_id: alert.rule_id, node: alert.node_id, duration: String(f.get('duration')), comment: String(f.get('comment') || '') });
      setOpen(false);
      onDone();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <form class="form form-row inline-form" onSubmit={submit} data-testid="silence-form">
      <label class="field">
        <span>For</span>
        <select name="duration" data-testid="silence-duration">
          {['30m', '1h', '4h', '24h', '7d'].map((d) => (
            <option key={d} value={d}>
              {d}
            </option>
          ))}
        </select>
      </label>
      <label class="field">
        <span>Why</span>
        <input name="comment" required maxLength={500} placeholder="maintenance" data-testid="silence-comment" />
      </label>
      <button class="btn btn-primary btn-small" type="submit" data-testid="silence-submit">
        Silence
      </button>
      {error && <p class="form-error" role="alert">{error}</p>}
    </form>
  );
}

function AlertTable({ alerts, rules, canAct, reload, label }: { alerts: AlertRecord[]; rules: RuleRecord[]; canAct: boolean; reload: () => void; label: string }) {
  const ruleName = (id: number) => rules.find((r) => r.id === id)?.name || `rule ${id}`;
  return (
    <table class="simple cards" aria-label={label} data-testid="alerts-table">
      <thead>
        <tr>
          <th scope="col">State</th>
          <th scope="col">Rule</th>
          <th scope="col">Host</th>
          <th scope="col">Summary</th>
          <th scope="col">Since</th>
          {canAct && <th scope="col">Actions</th>}
        </tr>
      </thead>
      <tbody>
        {alerts.map((a) => (
          <tr key={a.id} data-testid="alert-row" data-state={a.state} data-acked={String(!!a.acked_ms)} data-silenced={String(a.silenced)} data-rule={ruleName(a.rule_id)}>
            <td class="nowrap">{stateBadge(a)}</td>
            <td>{ruleName(a.rule_id)}</td>
            <td>
              <Link href={hostUrl(a.node_id)}>{hostName(a.node_id)}</Link>
            </td>
            <td>
              {a.summary}
              {a.resolved_ms && <small class="sub">lasted {durationMs(a.resolved_ms - (a.fired_ms ?? a.started_ms))}</small>}
              {a.acked_ms && (
                <small class="sub" data-testid="ack-note">
                  acknowledged by {a.acked_by}
                  {a.ack_comment ? `: ${a.ack_comment}` : ''}
                </small>
              )}
            </td>
            <td class="nowrap" title={dateTime(a.fired_ms ?? a.started_ms)}>
              {ago(a.fired_ms ?? a.started_ms)}
              <small class="sub">
                <Link href={beforeUrl(a.node_id, a.started_ms)} class="before-link" data-testid="alert-what-changed" aria-label={`What changed before this alert on ${hostName(a.node_id)}`}>
                  What changed before this
                </Link>
              </small>
            </td>
            {canAct && (
              <td>
                {a.state !== 'resolved' && !a.acked_ms && <AckForm alert={a} onDone={reload} />}
                {a.state !== 'resolved' && !a.silenced && <SilenceForm alert={a} onDone={reload} />}
              </td>
            )}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function RuleForm({ channels, onDone }: { channels: ChannelRecord[]; onDone: () => void }) {
  const [kind, setKind] = useState<string>('host_down');
  const [error, setError] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const body: Record<string, unknown> = { name: String(f.get('name') || ''), kind, channels: f.getAll('channel').map(Number) };
    const forText = String(f.get('for') || '');
    if (forText && !EVENT_KINDS.includes(kind)) body.for = forText;
    if (kind === 'disk_forecast') {
      if (f.get('within')) body.within = String(f.get('within'));
      if (f.get('window')) body.window = String(f.get('window'));
    }
    if (kind === 'file_changed' && f.get('risk')) body.risk = String(f.get('risk'));
    if (THRESHOLD_KINDS.includes(kind)) {
      if (f.get('above')) body.above = Number(f.get('above'));
      if (f.get('clear')) body.clear = Number(f.get('clear'));
    }
    try {
      await alertsApi.addRule(body);
      form.reset();
      setError('');
      onDone();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <section class="panel" aria-labelledby="new-rule-title">
      <h2 id="new-rule-title">Add a rule</h2>
      <form class="form form-row" onSubmit={submit} noValidate data-testid="rule-form">
        <label class="field">
          <span>Name</span>
          <input name="name" required maxLength={100} data-testid="rule-name" />
        </label>
        <label class="field">
          <span>Watches</span>
          <select name="kind" value={kind} onChange={(e) => setKind(e.currentTarget.value)} data-testid="rule-kind">
            {RULE_KINDS.map((k) => (
              <option key={k} value={k}>
                {k.replaceAll('_', ' ')}
              </option>
            ))}
          </select>
        </label>
        {!EVENT_KINDS.includes(kind) && (
          <label class="field">
            <span>For</span>
            <input name="for" placeholder="e.g. 2m" pattern="[0-9]+(ms|s|m|h)" data-testid="rule-for" />
          </label>
        )}
        {kind === 'disk_forecast' && (
          <>
            <label class="field">
              <span>Fills within</span>
              <input name="within" placeholder="24h" pattern="[0-9]+(s|m|h|d)" data-testid="rule-within" />
            </label>
            <label class="field">
              <span>From the last</span>
              <input name="window" placeholder="6h" pattern="[0-9]+(s|m|h|d)" data-testid="rule-window" />
            </label>
          </>
        )}
        {kind === 'file_changed' && (
          <label class="field">
            <span>Risk at least</span>
            <select name="risk" data-testid="rule-risk">
              {['high', 'critical', 'medium', 'low'].map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          </label>
        )}
        {THRESHOLD_KINDS.includes(kind) && (
          <>
            <label class="field">
              <span>Above %</span>
              <input name="above" type="number" min={0} max={100} placeholder="90" data-testid="rule-above" />
            </label>
            <label class="field">
              <span>Clear at %</span>
              <input name="clear" type="number" min={0} max={100} placeholder="80" data-testid="rule-clear" />
            </label>
          </>
        )}
        <fieldset class="field">
          <legend>Notify</legend>
          {channels.length === 0 && <span class="muted">no channels yet</span>}
          {channels.map((c) => (
            <label key={c.id} class="check">
              <input type="checkbox" name="channel" value={c.id} data-testid={`rule-channel-${c.name}`} /> {c.name}
            </label>
          ))}
        </fieldset>
        <button class="btn btn-primary" type="submit" data-testid="rule-submit">
          Add rule
        </button>
      </form>
      {error && (
        <p class="form-error" role="alert" data-testid="rule-error">
          {error}
        </p>
      )}
    </section>
  );
}

function Rules({ admin }: { admin: boolean }) {
  const rules = usePolled(alertsApi.rules, 10000);
  const channels = usePolled(() => (admin ? alertsApi.channels() : Promise.resolve([] as ChannelRecord[])), 10000, [admin]);
  const [error, setError] = useState('');
  const toggle = async (r: RuleRecord) => {
    try {
      await alertsApi.updateRule(r.id, { enabled: !r.enabled });
      rules.reload();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  const setChannels = async (r: RuleRecord, ids: number[]) => {
    try {
      await alertsApi.updateRule(r.id, { channels: ids });
      rules.reload();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  const names = (ids: number[]) => ids.map((id) => channels.data?.find((c) => c.id === id)?.name || `#${id}`).join(', ') || '—';
  if (rules.error) return <ErrorBox message={rules.error} retry={rules.reload} />;
  return (
    <>
      {admin && <RuleForm channels={channels.data || []} onDone={rules.reload} />}
      <div class="panel">
        <table class="simple cards" aria-label="Rules" data-testid="rules-table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Watches</th>
              <th scope="col">For</th>
              <th scope="col">Notifies</th>
              <th scope="col">On</th>
            </tr>
          </thead>
          <tbody>
            {(rules.data || []).map((r) => (
              <tr key={r.id} data-testid="rule-row" data-name={r.name} data-enabled={String(r.enabled)}>
                <td>{r.name}</td>
                <td>
                  {r.kind.replace('_', ' ')}
                  {r.above != null && ` > ${r.above} %${r.clear != null ? ` (clears ≤ ${r.clear} %)` : ''}`}
                </td>
                <td>{r.for_ms ? durationMs(r.for_ms) : 'at once'}</td>
                <td>
                  {admin ? (
                    <span class="rule-channels">
                      {names(r.channels)}
                      {(channels.data || []).some((c) => !r.channels.includes(c.id)) && (
                        <select
                          aria-label={`Add a channel to ${r.name}`}
                          value=""
                          onChange={(e) => setChannels(r, [...r.channels, Number(e.currentTarget.value)])}
                          data-testid="rule-add-channel"
                        >
                          <option value="">add…</option>
                          {(channels.data || [])
                            .filter((c) => !r.channels.includes(c.id))
                            .map((c) => (
                              <option key={c.id} value={c.id}>
                                {c.name}
                              </option>
                            ))}
                        </select>
                      )}
                      {r.channels.length > 0 && (
                        <button type="button" class="btn btn-small btn-ghost" onClick={() => setChannels(r, [])} aria-label={`Notify no channel for ${r.name}`}>
                          clear
                        </button>
                      )}
                    </span>
                  ) : (
                    r.channels.length
                  )}
                </td>
                <td>
                  {admin ? (
                    <button type="button" class="btn btn-small" aria-pressed={r.enabled} onClick={() => toggle(r)} data-testid="rule-toggle">
                      {r.enabled ? 'On' : 'Off'}
                    </button>
                  ) : r.enabled ? (
                    'on'
                  ) : (
                    'off'
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {error && <p class="form-error" role="alert">{error}</p>}
      </div>
    </>
  );
}

function ChannelForm({ onDone }: { onDone: () => void }) {
  const [error, setError] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const body: Record<string, unknown> = { name: String(f.get('name') || ''), url: String(f.get('url') || '') };
    const kind = String(f.get('kind') || '');
    if (kind) body.kind = kind;
    const secret = String(f.get('secret') || '');
    if (secret) body.secret = secret;
    const quiet = String(f.get('quiet') || '');
    if (quiet) body.quiet_hours = quiet;
    try {
      await alertsApi.addChannel(body);
      form.reset();
      setError('');
      onDone();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <section class="panel" aria-labelledby="new-channel-title">
      <h2 id="new-channel-title">Add a channel</h2>
      <form class="form form-row" onSubmit={submit} noValidate data-testid="channel-form">
        <label class="field">
          <span>Name</span>
          <input name="name" required maxLength={100} data-testid="channel-name" />
        </label>
        <label class="field">
          <span>Kind</span>
          <select name="kind" data-testid="channel-kind">
            <option value="">from the URL</option>
            {CHANNEL_KINDS.map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </label>
        <label class="field">
          <span>URL</span>
          <input name="url" required maxLength={2000} placeholder="ntfy://ntfy.sh/topic, https://…, smtp://…" spellcheck={false} data-testid="channel-url" />
        </label>
        <label class="field">
          <span>Secret (webhook signing key, ntfy token)</span>
          <input name="secret" type="password" autoComplete="off" maxLength={200} data-testid="channel-secret" />
        </label>
        <label class="field">
          <span>Quiet hours (UTC)</span>
          <input name="quiet" placeholder="22:00-07:00" pattern="[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]" data-testid="channel-quiet" />
        </label>
        <button class="btn btn-primary" type="submit" data-testid="channel-submit">
          Add channel
        </button>
      </form>
      {error && (
        <p class="form-error" role="alert" data-testid="channel-error">
          {error}
        </p>
      )}
      <p class="hint">Secrets in the URL (tokens, passwords) are never shown again. See docs/alerts.md for each kind's URL.</p>
    </section>
  );
}

function Channels() {
  const channels = usePolled(alertsApi.channels, 10000);
  const [result, setResult] = useState<Record<number, string>>({});
  const test = async (c: ChannelRecord) => {
    setResult((r) => ({ ...r, [c.id]: 'sending…' }));
    try {
      await alertsApi.testChannel(c.id);
      setResult((r) => ({ ...r, [c.id]: 'sent' }));
    } catch (err) {
      setResult((r) => ({ ...r, [c.id]: `failed: ${(err as Error).message}` }));
    }
    channels.reload();
  };
  if (channels.error) return <ErrorBox message={channels.error} retry={channels.reload} />;
  return (
    <>
      <ChannelForm onDone={channels.reload} />
      <div class="panel">
        <table class="simple cards" aria-label="Channels" data-testid="channels-table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Kind</th>
              <th scope="col">URL</th>
              <th scope="col">Last sent</th>
              <th scope="col">Last failure</th>
              <th scope="col">Test</th>
            </tr>
          </thead>
          <tbody>
            {(channels.data || []).map((c) => (
              <tr key={c.id} data-testid="channel-row" data-name={c.name}>
                <td>{c.name}</td>
                <td>
                  {c.kind}
                  {c.quiet_hours && <small class="sub">quiet {c.quiet_hours} UTC</small>}
                </td>
                <td class="mono">{c.url}</td>
                <td>{c.last_sent_ms ? ago(c.last_sent_ms) : 'never'}</td>
                <td>{c.last_error ? <span title={dateTime(c.last_error_ms)}>{c.last_error}</span> : '—'}</td>
                <td>
                  <button type="button" class="btn btn-small" onClick={() => test(c)} data-testid="channel-test">
                    Send test
                  </button>
                  {result[c.id] && (
                    <small class="sub" role="status" data-testid="channel-test-result">
                      {result[c.id]}
                    </small>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function Silences({ canAct }: { canAct: boolean }) {
  const silences = usePolled(alertsApi.silences, 10000);
  const expire = async (s: SilenceRecord) => {
    await alertsApi.expireSilence(s.id).catch(() => undefined);
    silences.reload();
  };
  if (silences.error) return <ErrorBox message={silences.error} retry={silences.reload} />;
  const list = silences.data || [];
  if (list.length === 0)
    return (
      <Empty title="No silences" testId="silences-empty">
        Silence an alert from its row: it is still evaluated and listed, not sent. A silence on one host is a maintenance window.
      </Empty>
    );
  const now = Date.now();
  return (
    <div class="panel">
      <table class="simple cards" aria-label="Silences" data-testid="silences-table">
        <thead>
          <tr>
            <th scope="col">Matches</th>
            <th scope="col">Until</th>
            <th scope="col">By</th>
            <th scope="col">Why</th>
            {canAct && <th scope="col">End</th>}
          </tr>
        </thead>
        <tbody>
          {list.map((s) => (
            <tr key={s.id} data-testid="silence-row">
              <td>
                {[s.rule_id != null ? `rule ${s.rule_id}` : '', s.node_id ? hostName(s.node_id) : '', ...Object.entries(s.labels).map(([k, v]) => `${k}=${v}`)].filter(Boolean).join(' · ')}
              </td>
              <td>{s.ends_ms > now ? dateTime(s.ends_ms) : <Badge text="ended" tone="muted" />}</td>
              <td>{s.created_by}</td>
              <td>{s.comment}</td>
              {canAct && <td>{s.ends_ms > now && <button type="button" class="btn btn-small" onClick={() => expire(s)}>End now</button>}</td>}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function Alerts({ query }: { query: URLSearchParams }) {
  const role = useContext(RoleContext);
  useFleet();
  const admin = atLeast(role, 'admin');
  const operator = atLeast(role, 'operator');
  const tabs = TABS.filter((t) => t !== 'channels' || admin);
  const asked = query.get('tab') as Tab | null;
  const tab: Tab = asked && tabs.includes(asked) ? asked : 'active';
  const history = tab === 'history';
  // Read once, then kept current by the stream.
  const alerts = useLiveAlerts(history);
  const rules = usePolled(alertsApi.rules, 15000, [tab]);
  // An alert of a rule not known here yet (just added): read the rules again.
  useEffect(() => {
    if (rules.data && alerts.data?.some((a) => !rules.data?.some((r) => r.id === a.rule_id))) rules.reload();
  }, [alerts.data]);
  const active = alerts.data || [];
  const firing = active.filter((a) => a.state === 'firing' && !a.acked_ms && !a.silenced).length;
  return (
    <section class="screen" aria-labelledby="alerts-title">
      <div class="screen-head">
        <h1 id="alerts-title">Alerts</h1>
        {!history && alerts.data && (
          <span class="muted" data-testid="alerts-count">
            {firing} firing · {active.filter((a) => a.state === 'pending').length} pending · {active.filter((a) => a.acked_ms).length} acknowledged
          </span>
        )}
      </div>
      <div class="tabs" role="tablist" aria-label="Alert sections">
        {tabs.map((t) => (
          <Link key={t} href={t === 'active' ? '/alerts' : `/alerts?tab=${t}`} role="tab" aria-selected={tab === t} class={`tab${tab === t ? ' on' : ''}`} data-testid={`alerts-tab-${t}`}>
            {t}
          </Link>
        ))}
      </div>
      <div role="tabpanel" class="tabpanel">
        {(tab === 'active' || tab === 'history') &&
          (alerts.error ? (
            <ErrorBox message={alerts.error} retry={alerts.reload} />
          ) : !alerts.data ? (
            <p class="muted">Loading…</p>
          ) : active.length === 0 ? (
            <Empty title={history ? 'No alerts yet' : 'Nothing is firing'} testId="alerts-empty">
              {history ? 'Alerts appear here when a rule’s condition holds.' : 'Every rule’s condition is clear on every host.'}
            </Empty>
          ) : (
            <div class="panel">
              <AlertTable alerts={active} rules={rules.data || []} canAct={operator && !history} reload={alerts.reload} label={history ? 'Alert history' : 'Active alerts'} />
            </div>
          ))}
        {tab === 'rules' && <Rules admin={admin} />}
        {tab === 'channels' && admin && <Channels />}
        {tab === 'silences' && <Silences canAct={operator} />}
      </div>
    </section>
  );
}

/** The navigation's count of firing, unacknowledged alerts (live). */
export function AlertsBadge() {
  useFleet();
  const { data } = useLiveAlerts(false);
  const n = (data || []).filter((a) => a.state === 'firing' && !a.acked_ms && !a.silenced).length;
  if (n === 0) return null;
  return (
    <span class="chip-n nav-alerts" aria-label={`${n} firing`} data-testid="nav-alerts-count">
      {n}
    </span>
  );
}
