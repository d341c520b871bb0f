import { useEffect, useState } from "preact/hooks";
import { api, asAdmin, messageOf } from "../api";
import { NoteLine, Failure, Head } from "../ui";

/** A user as GoTrue's admin API returns it. */
interface User {
  id: string;
  email: string;
  created_at: string;
  last_sign_in_at?: string;
  email_confirmed_at?: string;
  banned_until?: string;
  user_metadata: Record<string, unknown>;
}

interface Session {
  id: string;
  created_at: string | null;
  refreshed_at: string | null;
  user_agent: string | null;
  ip: string | null;
}

const PER_PAGE = 50;
/** GoTrue's way to ban for good: a hundred years. */
const FOREVER = "876000h";

function when(at: string | null | undefined): string {
  return at ? new Date(at).toLocaleString() : "—";
}

function banned(user: User): boolean {
  return !!user.banned_until && Date.parse(user.banned_until) > Date.now();
}

const JSON_HEADERS = { "content-type": "application/json" };

/** Users (GoTrue's admin API, as the admin) and their sessions (`/api/v1/auth/sessions`). */
export function Users() {
  const [search, setSearch] = useState("");
  const [filter, setFilter] = useState("");
  const [page, setPage] = useState(1);
  const [users, setUsers] = useState<User[] | null>(null);
  const [total, setTotal] = useState(0);
  const [error, setError] = useState("");
  const [version, setVersion] = useState(0);
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");

  useEffect(() => {
    let live = true;
    const query = new URLSearchParams({ page: String(page), per_page: String(PER_PAGE) });
    if (filter) query.set("filter", filter);
    asAdmin(`/auth/v1/admin/users?${query}`)
      .then(async (response) => {
        const body = (await response.json()) as { users: User[] };
        if (!live) return;
        setUsers(body.users);
        setTotal(Number(response.headers.get("x-total-count") ?? body.users.length));
        setError("");
      })
      .catch((err: unknown) => live && setError(messageOf(err)));
    return () => {
      live = false;
    };
  }, [filter, page, version]);

  async function act(user: User, what: string, body: unknown, method = "PUT") {
    try {
      await asAdmin(`/auth/v1/admin/users/${user.id}`, {
        method,
        headers: body === undefined ? undefined : JSON_HEADERS,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      setMessage({ error: false, text: `${user.email}: ${what}.` });
      setVersion(version + 1);
    } catch (err) {
      setMessage({ error: true, text: `${user.email}: ${messageOf(err)}` });
    }
  }

  async function resetPassword(user: User) {
    const next = prompt(`A new password for ${user.email}:`);
    if (next) await act(user, "password changed", { password: next });
  }

  async function remove(user: User) {
    if (confirm(`Delete ${user.email}? Their sessions end, and rows that reference them may go too.`)) {
      await act(user, "deleted", undefined, "DELETE");
    }
  }

  async function create(event: Event) {
    event.preventDefault();
    try {
      await asAdmin("/auth/v1/admin/users", {
        method: "POST",
        headers: JSON_HEADERS,
        body: JSON.stringify({ email, password: password || undefined, email_confirm: true }),
      });
      setMessage({ error: false, text: `${email} was added (email confirmed).` });
      setEmail("");
      setPassword("");
      setVersion(version + 1);
    } catch (err) {
      setMessage({ error: true, text: messageOf(err) });
    }
  }

  const pages = Math.max(1, Math.ceil(total / PER_PAGE));
  return (
    <div class="users">
      <form
        class="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setPage(1);
          setFilter(search.trim());
        }}
      >
        <label>
          Search users
          <input value={search} placeholder="email or name" onInput={(e) => setSearch(e.currentTarget.value)} />
        </label>
        <button type="submit" class="secondary">
          Search
        </button>
      </form>
      <NoteLine note={message} />
      <Failure text={error} />
      {!users && !error && (
        <p class="muted" aria-busy="true">
          Loading…
        </p>
      )}
      {users && users.length === 0 && <p class="muted">{filter ? `No user matches "${filter}".` : "No users yet."}</p>}
      {users && users.length > 0 && (
        <>
          <p class="muted" data-testid="user-count">
            {total} user{total === 1 ? "" : "s"}
            {pages > 1 ? `, page ${page} of ${pages}` : ""}
          </p>
          <table data-testid="users">
            <Head columns={["Email", "Created", "Last sign-in", "State", { label: "Actions", hidden: true }]} />
            <tbody>
              {users.map((user) => (
                <>
                  <tr key={user.id}>
                    <td>{user.email}</td>
                    <td>{when(user.created_at)}</td>
                    <td>{when(user.last_sign_in_at)}</td>
                    <td>{banned(user) ? "banned" : user.email_confirmed_at ? "active" : "unconfirmed"}</td>
                    <td class="actions">
                      {banned(user) ? (
                        <button type="button" class="link" onClick={() => void act(user, "unbanned", { ban_duration: "none" })}>
                          Unban
                        </button>
                      ) : (
                        <button type="button" class="link" onClick={() => void act(user, "banned", { ban_duration: FOREVER })}>
                          Ban
                        </button>
                      )}
                      <button type="button" class="link" onClick={() => void resetPassword(user)}>
                        Set password
                      </button>
                      <button
                        type="button"
                        class="link"
                        aria-expanded={open === user.id}
                        onClick={() => setOpen(open === user.id ? null : user.id)}
                      >
                        Sessions
                      </button>
                      <button type="button" class="link danger" onClick={() => void remove(user)}>
                        Delete
                      </button>
                    </td>
                  </tr>
                  {open === user.id && (
                    <tr>
                      <td colSpan={5}>
                        <Sessions user={user} />
                      </td>
                    </tr>
                  )}
                </>
              ))}
            </tbody>
          </table>
          {pages > 1 && (
            <div class="pager">
              <button type="button" class="secondary" disabled={page === 1} onClick={() => setPage(page - 1)}>
                Previous page
              </button>
              <button type="button" class="secondary" disabled={page >= pages} onClick={() => setPage(page + 1)}>
                Next page
              </button>
            </div>
          )}
        </>
      )}
      <form class="inline" onSubmit={(e) => void create(e)} aria-label="Add a user">
        <h2>Add a user</h2>
        <label>
          Email
          <input type="email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </label>
        <label>
          Password
          <input
            type="password"
            value={password}
            placeholder="optional"
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <button type="submit">Add user</button>
      </form>
    </div>
  );
}

function Sessions(props: { user: User }) {
  const [sessions, setSessions] = useState<Session[] | null>(null);
  const [error, setError] = useState("");
  const [version, setVersion] = useState(0);
  useEffect(() => {
    api<{ sessions: Session[] }>(`/api/v1/auth/sessions?user_id=${props.user.id}`).then(
      (s) => setSessions(s.sessions),
      (err: unknown) => setError(messageOf(err)),
    );
  }, [version]);

  async function end(path: string) {
    try {
      await api(path, { method: "DELETE" });
      setVersion(version + 1);
    } catch (err) {
      setError(messageOf(err));
    }
  }

  if (error)
    return (
      <p class="error" role="alert">
        {error}
      </p>
    );
  if (!sessions) return <p class="muted">Loading…</p>;
  if (sessions.length === 0) return <p class="muted">No sessions: {props.user.email} is signed out everywhere.</p>;
  return (
    <div class="sessions">
      <table aria-label={`Sessions of ${props.user.email}`}>
        <Head columns={["Started", "Refreshed", "From", { label: "Actions", hidden: true }]} />
        <tbody>
          {sessions.map((s) => (
            <tr>
              <td>{when(s.created_at)}</td>
              <td>{when(s.refreshed_at)}</td>
              <td>
                {s.ip ?? ""} {s.user_agent ?? ""}
              </td>
              <td>
                <button type="button" class="link danger" onClick={() => void end(`/api/v1/auth/sessions/${s.id}`)}>
                  End
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <button type="button" class="secondary" onClick={() => void end(`/api/v1/auth/users/${props.user.id}/sessions`)}>
        Sign out everywhere
      </button>
    </div>
  );
}
