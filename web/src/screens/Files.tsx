// Watched configuration files: a host's Files tab (the list, one file's
// versions, the diff between two of them) and the fleet's recent changes
// (/changes). Metadata is for viewers; content (diffs) needs operator.
//
// Live: the list follows the twin's `files` collection at once, and every
// list re-reads the hub when the twin's files change or a `file.*` event
// arrives on the stream (a version rated: its risk and summary are in).

import { useContext } from 'preact/hooks';
import { api, ApiError } from '../api';
import { can, RoleContext } from '../access';
import { Badge, Empty, ErrorBox, SourceUnavailable } from '../components/bits';
import { ago, bytes, clock } from '../format';
import { hostUrl, Link, screenHref, setQuery } from '../router';
import { fleet } from '../store';
import type { FileDiff, FileEntry, FileVersion, NodeView, Risk, WatchedFile } from '../types';
import { useFleet } from '../useFleet';
import { useLoad } from '../useLoad';

export const RISKS: Risk[] = ['low', 'medium', 'high', 'critical'];

const RISK_TONE: Record<string, string> = { low: 'muted', medium: 'warn', high: 'bad', critical: 'crit' };

/** A change's risk in words (never colour alone); `null` while the hub waits for the content. */
export function RiskBadge({ risk }: { risk: string | null | undefined }) {
  if (!risk) return <span class="badge muted" data-testid="risk" data-risk="">rating…</span>;
  return (
    <span class={`badge ${RISK_TONE[risk] ?? 'muted'}`} data-testid="risk" data-risk={risk}>
      {risk} risk
    </span>
  );
}

export function riskTone(risk: unknown): string {
  return risk === 'critical' || risk === 'high' ? 'bad' : risk === 'medium' ? 'warn' : 'muted';
}

/** The URL of one file's history on its host (optionally two versions to compare). */
export function fileUrl(node: string, path: string, extra: Record<string, string> = {}): string {
  return screenHref(`/hosts/${encodeURIComponent(node)}`, { tab: 'files', path, ...extra });
}

const KIND_LABEL: Record<string, string> = {
  compose: 'compose',
  systemd_unit: 'systemd unit',
  nginx: 'nginx',
  caddy: 'Caddy',
  env: 'env',
  yaml: 'YAML',
  other: 'other',
};
const kindLabel = (k: string) => KIND_LABEL[k] ?? k;

const ORIGIN_LABEL: Record<string, string> = { watch: 'watched', compose: 'compose project', unit: 'unit file' };

/** Why the content does not travel, or what was taken out of it. */
function contentNote(f: { content: string; redacted?: number; keyed?: boolean }): { icon?: string; text: string } | null {
  if (f.content === 'secret') return { icon: '🔒', text: 'hashed only: secret' };
  if (f.content === 'too_large') return { text: 'hashed only: too large to ship' };
  if (f.content === 'binary') return { text: 'hashed only: binary' };
  if (f.content === 'shipped' && f.redacted) return { icon: '🔒', text: `${f.redacted} secret value${f.redacted === 1 ? '' : 's'} redacted` };
  return null;
}

function ContentNote({ f }: { f: { content: string; redacted?: number; keyed?: boolean } }) {
  const n = contentNote(f);
  if (!n) return null;
  return (
    <small class="file-note" data-testid="content-note" data-content={f.content}>
      {n.icon && <span aria-hidden="true">{n.icon} </span>}
      {n.text}
    </small>
  );
}

function StateBadge({ state }: { state: string }) {
  if (state === 'present') return <Badge text="present" tone="ok" />;
  return <Badge text={state} tone={state === 'unreadable' ? 'bad' : 'warn'} />;
}

const mode = (m: number | null | undefined) => (m == null ? '' : `0${(m & 0o7777).toString(8)}`);

// ---------------------------------------------------------------- the tab

export function FilesTab({ node, query }: { node: NodeView; query: URLSearchParams }) {
  const path = query.get('path');
  return (
    <div data-testid="section-files">
      <SourceUnavailable source={node.sources.files} />
      {path ? <FileHistory node={node} path={path} query={query} /> : <FileList node={node} />}
    </div>
  );
}

function FileList({ node }: { node: NodeView }) {
  useFleet();
  // Re-read the hub's view (last change, risk, drift) whenever the twin's
  // files change or a file event arrives.
  const listed = useLoad(() => api.files(node.id), [node.id, node.files, fleet.fileEvents]);
  const byPath = new Map((listed.data ?? []).map((e) => [e.path, e]));
  const files = Object.values(node.files).sort((a, b) => a.path.localeCompare(b.path));

  if (files.length === 0)
    return (
      <Empty title="No watched files on this host" testId="files-empty">
        Watch a file or a directory and every change to it is kept, rated and shown here: <code>twinbay agent --watch /etc/nginx</code> (or <code>twinbay up --watch PATH</code>). Compose files of running containers and the files of systemd units appear here too when the agent can read them.
      </Empty>
    );
  return (
    <div class="panel">
      {listed.error && <ErrorBox message={listed.error} retry={listed.reload} />}
      <table class="simple cards files" data-testid="files-table">
        <caption class="sr-only">Watched files on {node.hostname}</caption>
        <thead>
          <tr>
            <th scope="col">File</th>
            <th scope="col">Kind</th>
            <th scope="col">State</th>
            <th scope="col">Size</th>
            <th scope="col">Last change</th>
            <th scope="col">Risk</th>
            <th scope="col">Origin</th>
          </tr>
        </thead>
        <tbody>
          {files.map((f) => (
            <FileRow key={f.path} node={node} f={f} e={byPath.get(f.path)} loading={listed.loading && !listed.data} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function FileRow({ node, f, e, loading }: { node: NodeView; f: WatchedFile; e: FileEntry | undefined; loading: boolean }) {
  // The hub's entry speaks of this version only if the hashes agree.
  const cur = e && e.sha256 === f.sha256 && e.state === f.state ? e : undefined;
  const drift = cur?.drift ?? [];
  return (
    <tr data-testid="file-row" data-path={f.path} data-state={f.state} data-sha={f.sha256 ?? ''}>
      <td class="file-path">
        <Link href={fileUrl(node.id, f.path)} class="mono" title={`History of ${f.path}`}>
          {f.path}
        </Link>
        <ContentNote f={f} />
        {f.error && <small class="file-note warn-text">{f.error}</small>}
      </td>
      <td data-label="Kind">{kindLabel(f.kind)}</td>
      <td data-label="State">
        <StateBadge state={f.state} />
      </td>
      <td class="num" data-label="Size">{f.state === 'present' ? bytes(f.size) : '—'}</td>
      <td class="nowrap" data-label="Last change" data-testid="last-change">
        {cur?.last_change_ms != null ? <span title={clock(cur.last_change_ms)}>{ago(cur.last_change_ms)}</span> : <span class="muted">{loading ? '…' : '—'}</span>}
      </td>
      <td class="nowrap" data-label="Risk">
        {cur ? <RiskBadge risk={cur.risk} /> : <span class="muted">—</span>}
        {drift.length > 0 && (
          <>
            {' '}
            <span class="badge warn" title={`${drift.length} service${drift.length === 1 ? '' : 's'} still run${drift.length === 1 ? 's' : ''} the old version`} data-testid="drift">
              drift
            </span>
          </>
        )}
        {cur?.summary && <small class="sub">{cur.summary}</small>}
      </td>
      <td data-label="Origin">{ORIGIN_LABEL[f.origin] ?? f.origin}</td>
    </tr>
  );
}

// ---------------------------------------------------------------- one file

function FileHistory({ node, path, query }: { node: NodeView; path: string; query: URLSearchParams }) {
  useFleet();
  const role = useContext(RoleContext);
  const f = node.files[path];
  const hist = useLoad(() => api.fileHistory(node.id, path), [node.id, path, f, fleet.fileEvents]);
  const versions = hist.data ?? [];
  const withContent = versions.filter((v) => v.sha256);
  // Two versions to compare, by id: from the URL, else the newest and the one before it.
  const byId = (s: string | null) => versions.find((v) => String(v.id) === s && v.sha256);
  const to = byId(query.get('to')) ?? withContent[0];
  const from = byId(query.get('from')) ?? (to && (withContent.find((v) => v.ts_ms < to.ts_ms && v.sha256 === to.prev_sha256) ?? withContent.find((v) => v.ts_ms < to.ts_ms)));
  const mayDiff = can(role, 'files.diff');

  return (
    <div class="file-history" data-testid="file-history" data-path={path}>
      <div class="panel">
        <div class="panel-head">
          <Link href={hostUrl(node.id, 'files')} data-testid="files-back">
            ← All files
          </Link>
        </div>
        <h2 class="mono file-title">{path}</h2>
        {f ? (
          <p class="muted small file-meta">
            <StateBadge state={f.state} /> {kindLabel(f.kind)} · {ORIGIN_LABEL[f.origin] ?? f.origin}
            {f.state === 'present' ? ` · ${bytes(f.size)}` : ''}
            {f.mode != null ? ` · mode ${mode(f.mode)}` : ''}
            {f.uid != null ? ` · uid ${f.uid}` : ''}
            {f.mtime_ms ? ` · modified ${clock(f.mtime_ms)}` : ''} <ContentNote f={f} />
            {f.error && <span class="warn-text"> · {f.error}</span>}
          </p>
        ) : (
          <p class="muted small">The host does not watch this file any more.</p>
        )}
      </div>

      <div class="panel">
        <h2>Versions</h2>
        {hist.error ? (
          <ErrorBox message={hist.error} retry={hist.reload} />
        ) : !hist.data ? (
          <p class="muted">Loading…</p>
        ) : versions.length === 0 ? (
          <Empty title="No versions recorded yet">The hub records a version when it first sees the file and at every change after.</Empty>
        ) : (
          <VersionTable node={node} path={path} versions={versions} from={from} to={to} mayDiff={mayDiff} />
        )}
      </div>

      {hist.data && versions.length > 0 && (
        <div class="panel" data-testid="diff-panel">
          <div class="panel-head">
            <h2>Diff</h2>
            {mayDiff && to && (
              <span class="muted small">
                {from ? clock(from.ts_ms) : 'nothing'} → {clock(to.ts_ms)}
              </span>
            )}
            <span class="spacer" />
            {mayDiff && to && <DiffModeChips split={query.get('view') === 'split'} />}
          </div>
          {!mayDiff ? (
            <DiffForbidden />
          ) : !to ? (
            <p class="muted">No version with content: nothing to compare.</p>
          ) : to.content !== 'shipped' || (from && from.content !== 'shipped') ? (
            <p class="muted" data-testid="diff-unavailable">
              The content of {to.content !== 'shipped' ? 'the newer' : 'the older'} version does not travel ({contentNote(to.content !== 'shipped' ? to : from!)?.text ?? to.content}): only its hash is known.
            </p>
          ) : (
            <Diff node={node} path={path} from={from} to={to} split={query.get('view') === 'split'} />
          )}
        </div>
      )}
    </div>
  );
}

const CHANGE_LABEL: Record<string, string> = { first_seen: 'first seen', changed: 'changed', created: 'created', deleted: 'deleted', unreadable: 'unreadable' };

function VersionTable({ node, path, versions, from, to, mayDiff }: { node: NodeView; path: string; versions: FileVersion[]; from?: FileVersion; to?: FileVersion; mayDiff: boolean }) {
  const pick = (which: 'from' | 'to', v: FileVersion) => setQuery({ [which]: String(v.id) });
  return (
    <table class="simple cards versions" data-testid="versions-table">
      <caption class="sr-only">Versions of {path} on {node.hostname}, newest first</caption>
      <thead>
        <tr>
          {mayDiff && (
            <>
              <th scope="col">From</th>
              <th scope="col">To</th>
            </>
          )}
          <th scope="col">Time</th>
          <th scope="col">Change</th>
          <th scope="col">Risk</th>
          <th scope="col">What changed</th>
        </tr>
      </thead>
      <tbody>
        {versions.map((v) => {
          const findings = v.assessment?.findings ?? [];
          const affected = (v.assessment?.affected ?? []).map(affectedName).filter(Boolean);
          const drift = v.assessment?.drift ?? [];
          const when = clock(v.ts_ms);
          return (
            <tr key={v.id} data-testid="version-row" data-change={v.change} data-sha={v.sha256 ?? ''} data-id={v.id} class={v === from || v === to ? 'selected' : ''}>
              {mayDiff && (
                <>
                  <td class="pick" data-label="From">
                    <input type="radio" name="diff-from" checked={v === from} disabled={!v.sha256} aria-label={`Compare from the version of ${when}`} onChange={() => pick('from', v)} data-testid="pick-from" />
                  </td>
                  <td class="pick" data-label="To">
                    <input type="radio" name="diff-to" checked={v === to} disabled={!v.sha256} aria-label={`Compare to the version of ${when}`} onChange={() => pick('to', v)} data-testid="pick-to" />
                  </td>
                </>
              )}
              <td class="nowrap">
                <span title={new Date(v.ts_ms).toLocaleString()}>{when}</span>
                <small class="sub">{ago(v.ts_ms)}</small>
              </td>
              <td data-label="Change">
                <Badge text={CHANGE_LABEL[v.change] ?? v.change} tone={v.change === 'deleted' || v.change === 'unreadable' ? 'warn' : 'muted'} />
              </td>
              <td data-label="Risk">
                <RiskBadge risk={v.risk} />
              </td>
              <td class="detail">
                <span data-testid="version-summary">{v.summary || (v.risk == null ? 'waiting for the content' : '')}</span>
                {v.sha256 && (
                  <small class="sub mono" title={v.sha256}>
                    {v.keyed ? 'keyed ' : ''}
                    {v.sha256.slice(0, 12)}
                    {v.size != null ? ` · ${bytes(v.size)}` : ''}
                  </small>
                )}
                <ContentNote f={v} />
                {findings.length > 0 && (
                  <ul class="findings" aria-label="Findings">
                    {findings.map((x, i) => (
                      <li key={i} data-testid="finding">
                        <RiskBadge risk={x.risk} /> <code>{x.rule}</code> {x.detail}
                      </li>
                    ))}
                  </ul>
                )}
                {affected.length > 0 && <small class="sub">Affects: {affected.join(', ')}</small>}
                {drift.length > 0 && (
                  <ul class="findings" aria-label="Drift">
                    {drift.map((d, i) => (
                      <li key={i} data-testid="drift-item">
                        <span class="badge warn">drift</span> {d.what} {d.reason ? `— ${d.reason}` : ''}
                      </li>
                    ))}
                  </ul>
                )}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/** An affected service as text: a string, or an object's kind and name. */
function affectedName(a: unknown): string {
  if (typeof a === 'string') return a;
  if (a && typeof a === 'object') {
    const o = a as Record<string, unknown>;
    const name = o.name ?? o.service ?? o.unit ?? o.container;
    if (name != null) return [o.kind, name].filter((x) => x != null).join(' ');
    return JSON.stringify(a);
  }
  return '';
}

// ---------------------------------------------------------------- the diff

function DiffModeChips({ split }: { split: boolean }) {
  return (
    <div class="chips" role="group" aria-label="Diff layout">
      <button type="button" class={`chip${!split ? ' on' : ''}`} aria-pressed={!split} onClick={() => setQuery({ view: null })} data-testid="diff-unified">
        Unified
      </button>
      <button type="button" class={`chip${split ? ' on' : ''}`} aria-pressed={split} onClick={() => setQuery({ view: 'split' })} data-testid="diff-split">
        Side by side
      </button>
    </div>
  );
}

interface DLine {
  t: 'ctx' | 'add' | 'del' | 'hunk' | 'meta';
  text: string;
  old?: number;
  new?: number;
}

/** A unified diff's lines, with their old and new line numbers. */
export function parseDiff(text: string): DLine[] {
  const out: DLine[] = [];
  let o = 0;
  let n = 0;
  const lines = text.split('\n');
  // Without hunk headers every line is a diff line (no file header to skip).
  let inHunk = !lines.some((l) => l.startsWith('@@'));
  if (lines.at(-1) === '') lines.pop();
  for (const line of lines) {
    if (line.startsWith('@@')) {
      const m = /^@@ -(\d+)(?:,\d+)? \+(\d+)/.exec(line);
      if (m) {
        o = Number(m[1]);
        n = Number(m[2]);
      }
      inHunk = true;
      out.push({ t: 'hunk', text: line });
    } else if (!inHunk || line.startsWith('\\')) {
      out.push({ t: 'meta', text: line });
    } else if (line.startsWith('+')) {
      out.push({ t: 'add', text: line.slice(1), new: n++ });
    } else if (line.startsWith('-')) {
      out.push({ t: 'del', text: line.slice(1), old: o++ });
    } else {
      out.push({ t: 'ctx', text: line.slice(1), old: o++, new: n++ });
    }
  }
  return out;
}

/** Text with the agent's redaction markers («redacted:…») set apart. */
function Marked({ text }: { text: string }) {
  const parts = text.split(/(«redacted[^»]*»)/);
  if (parts.length === 1) return <>{text}</>;
  return (
    <>
      {parts.map((p, i) =>
        i % 2 ? (
          <mark key={i} class="redacted" title="A secret value, redacted by the agent before it left the host" data-testid="redacted">
            {p}
          </mark>
        ) : (
          p
        ),
      )}
    </>
  );
}

const SIGN: Record<string, [string, string]> = { add: ['+', 'added'], del: ['−', 'removed'], ctx: ['', 'unchanged'] };

function Sign({ t }: { t: string }) {
  const [sign, word] = SIGN[t] ?? ['', ''];
  return (
    <td class="sign">
      <span aria-hidden="true">{sign}</span>
      <span class="sr-only">{word}</span>
    </td>
  );
}

function Diff({ node, path, from, to, split }: { node: NodeView; path: string; from?: FileVersion; to: FileVersion; split: boolean }) {
  // 403: not an operator; 409: hashed-only content; 404: content not on the hub yet. The hub says why.
  const d = useLoad<FileDiff | { refused: number; message: string }>(
    () =>
      api.fileDiff(node.id, path, from?.sha256, to.sha256).catch((err) =>
        err instanceof ApiError && [403, 404, 409].includes(err.status) ? { refused: err.status, message: err.message } : Promise.reject(err),
      ),
    [node.id, path, from?.sha256, to.sha256, to.risk],
  );
  if (d.error) return <ErrorBox message={d.error} retry={d.reload} />;
  if (!d.data) return <p class="muted">Loading the diff…</p>;
  if ('refused' in d.data)
    return d.data.refused === 403 ? (
      <DiffForbidden />
    ) : (
      <p class="muted" data-testid="diff-unavailable">
        No diff: {d.data.message}.
      </p>
    );
  if (from && from.sha256 === to.sha256) return <p class="muted" data-testid="diff-same">The same content: nothing changed between these versions.</p>;
  const lines = parseDiff(d.data.diff);
  if (!lines.some((l) => l.t === 'add' || l.t === 'del'))
    return (
      <p class="muted" data-testid="diff-same">
        No difference in the text.
      </p>
    );
  return split ? <SplitDiff lines={lines} path={path} /> : <UnifiedDiff lines={lines} path={path} />;
}

function DiffForbidden() {
  const role = useContext(RoleContext);
  return (
    <p class="note" data-testid="diff-forbidden">
      Diffs need the operator role: a file's content can hold secrets even after redaction. Your role ({role}) sees hashes, times and risk.
    </p>
  );
}

function UnifiedDiff({ lines, path }: { lines: DLine[]; path: string }) {
  return (
    <div class="diff-wrap">
      <table class="diff unified" data-testid="diff" data-layout="unified">
        <caption class="sr-only">Changes to {path}, unified</caption>
        <thead class="quiet">
          <tr>
            <th scope="col" class="ln">
              <span class="sr-only">Old line</span>
            </th>
            <th scope="col" class="ln">
              <span class="sr-only">New line</span>
            </th>
            <th scope="col">
              <span class="sr-only">Change</span>
            </th>
            <th scope="col">
              <span class="sr-only">Text</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {lines.map((l, i) =>
            l.t === 'hunk' || l.t === 'meta' ? (
              <tr key={i} class={`d-${l.t}`}>
                <td colSpan={4}>{l.text}</td>
              </tr>
            ) : (
              <tr key={i} class={`d-${l.t}`} data-testid={`diff-${l.t}`}>
                <td class="ln">{l.old ?? ''}</td>
                <td class="ln">{l.new ?? ''}</td>
                <Sign t={l.t} />
                <td class="code">
                  <Marked text={l.text} />
                </td>
              </tr>
            ),
          )}
        </tbody>
      </table>
    </div>
  );
}

/** Side by side: context on both sides, removed lines paired with the added ones after them. */
function SplitDiff({ lines, path }: { lines: DLine[]; path: string }) {
  const rows: { left?: DLine; right?: DLine; hunk?: DLine }[] = [];
  let i = 0;
  while (i < lines.length) {
    const l = lines[i];
    if (l.t === 'hunk' || l.t === 'meta') {
      rows.push({ hunk: l });
      i++;
    } else if (l.t === 'ctx') {
      rows.push({ left: l, right: l });
      i++;
    } else {
      const dels: DLine[] = [];
      const adds: DLine[] = [];
      while (i < lines.length && lines[i].t === 'del') dels.push(lines[i++]);
      while (i < lines.length && lines[i].t === 'add') adds.push(lines[i++]);
      for (let k = 0; k < Math.max(dels.length, adds.length); k++) rows.push({ left: dels[k], right: adds[k] });
    }
  }
  const side = (l: DLine | undefined, which: 'old' | 'new') =>
    l ? (
      <>
        <td class={`ln d-${l.t}`}>{l[which]}</td>
        <td class={`code d-${l.t}`} data-testid={l.t === 'ctx' ? undefined : `diff-${l.t}`}>
          <span class="sr-only">{SIGN[l.t]?.[1]}: </span>
          <Marked text={l.text} />
        </td>
      </>
    ) : (
      <>
        <td class="ln d-none" />
        <td class="code d-none" />
      </>
    );
  return (
    <div class="diff-wrap">
      <table class="diff split" data-testid="diff" data-layout="split">
        <caption class="sr-only">Changes to {path}, side by side</caption>
        <thead>
          <tr>
            <th scope="col" class="ln">
              <span class="sr-only">Old line</span>
            </th>
            <th scope="col">Before</th>
            <th scope="col" class="ln">
              <span class="sr-only">New line</span>
            </th>
            <th scope="col">After</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r, k) =>
            r.hunk ? (
              <tr key={k} class={`d-${r.hunk.t}`}>
                <td colSpan={4}>{r.hunk.text}</td>
              </tr>
            ) : (
              <tr key={k}>
                {side(r.left, 'old')}
                {side(r.right, 'new')}
              </tr>
            ),
          )}
        </tbody>
      </table>
    </div>
  );
}

// ---------------------------------------------------------------- /changes

const FLOORS: { key: string; label: string; risk: Risk | null }[] = [
  { key: 'all', label: 'All', risk: null },
  { key: 'medium', label: 'Medium and up', risk: 'medium' },
  { key: 'high', label: 'High and up', risk: 'high' },
  { key: 'critical', label: 'Critical', risk: 'critical' },
];

export function Changes({ query }: { query: URLSearchParams }) {
  useFleet();
  const floor = FLOORS.find((x) => x.key === query.get('risk')) ?? FLOORS[0];
  const changes = useLoad(() => api.fileChanges(floor.risk, 200), [floor.key, fleet.fileEvents]);
  const rows = changes.data ?? [];
  return (
    <section class="screen" aria-labelledby="changes-title">
      <div class="screen-head">
        <h1 id="changes-title">Config changes</h1>
        <span class="muted" data-testid="changes-count">
          {changes.data ? `${rows.length} change${rows.length === 1 ? '' : 's'} in the last 7 days` : 'loading…'}
        </span>
      </div>
      <div class="toolbar">
        <div class="chips" role="group" aria-label="Risk">
          {FLOORS.map((x) => (
            <button key={x.key} type="button" class={`chip${x === floor ? ' on' : ''}`} aria-pressed={x === floor} onClick={() => setQuery({ risk: x.risk })} data-testid={`risk-${x.key}`}>
              {x.label}
            </button>
          ))}
        </div>
      </div>
      {changes.error ? (
        <ErrorBox message={changes.error} retry={changes.reload} />
      ) : !changes.data ? (
        <p class="muted">Loading…</p>
      ) : rows.length === 0 ? (
        <Empty title={floor.risk ? `No ${floor.label.toLowerCase()} changes` : 'No configuration changes'} testId="changes-empty">
          {floor.risk ? 'Nothing this risky changed in the last 7 days. ' : 'No watched file changed in the last 7 days. '}
          Agents watch files given with <code>--watch PATH</code>, the compose files of their containers and their units' files; every change shows up here the moment the hub has rated it.
        </Empty>
      ) : (
        <div class="panel">
          <table class="simple cards changes" data-testid="changes-table">
            <caption class="sr-only">Configuration changes, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Host</th>
                <th scope="col">File</th>
                <th scope="col">Change</th>
                <th scope="col">Risk</th>
                <th scope="col">Summary</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((v) => (
                <ChangeRow key={v.id} v={v} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function ChangeRow({ v }: { v: FileVersion }) {
  const node = fleet.nodes.get(v.node_id);
  return (
    <tr data-testid="change-row" data-path={v.path} data-node-id={v.node_id} data-risk={v.risk ?? ''} data-sha={v.sha256 ?? ''}>
      <td class="nowrap">
        <span title={new Date(v.ts_ms).toLocaleString()}>{clock(v.ts_ms)}</span>
      </td>
      <td data-label="Host">{node ? <Link href={hostUrl(node.id, 'files')}>{node.hostname}</Link> : <span class="muted">{v.node_id}</span>}</td>
      <td class="file-path">
        <Link href={fileUrl(v.node_id, v.path)} class="mono" data-testid="change-link">
          {v.path}
        </Link>
      </td>
      <td>
        <Badge text={CHANGE_LABEL[v.change] ?? v.change} tone={v.change === 'deleted' || v.change === 'unreadable' ? 'warn' : 'muted'} />
      </td>
      <td>
        <RiskBadge risk={v.risk} />
      </td>
      <td class="detail">
        {v.summary}
        {(v.assessment?.findings?.length ?? 0) > 0 && <small class="sub">{v.assessment!.findings!.map((x) => x.detail || x.rule).join(' · ')}</small>}
      </td>
    </tr>
  );
}
