import { useState } from "preact/hooks";
import { api, session } from "../api";
import { Show, useLoaded } from "../load";
import { NoteLine, Head } from "../ui";

interface AdminRow {
  id: string;
  email: string;
  created_at: string;
  last_sign_in_at: string | null;
}

function when(at: string | null): string {
  return at ? new Date(at).toLocaleString() : "never";
}

export function Admins() {
  const [version, setVersion] = useState(0);
  const loaded = useLoaded(() => api<{ admins: AdminRow[] }>("/api/v1/admins"), version);
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);

  async function add(event: Event) {
    event.preventDefault();
    try {
      await api("/api/v1/admins", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email, password }),
      });
      setMessage({ error: false, text: `${email} can sign in now with the password you chose.` });
      setEmail("");
      setPassword("");
      setVersion(version + 1);
    } catch (err) {
      setMessage({ error: true, text: err instanceof Error ? err.message : String(err) });
    }
  }

  async function remove(admin: AdminRow) {
    if (!confirm(`Remove ${admin.email}? Their sessions end at once.`)) return;
    try {
      await api(`/api/v1/admins/${admin.id}`, { method: "DELETE" });
      setVersion(version + 1);
    } catch (err) {
      setMessage({ error: true, text: err instanceof Error ? err.message : String(err) });
    }
  }

  const me = session()?.admin.id;
  return (
    <>
      <Show loaded={loaded}>
        {({ admins }) =>
          admins.length === 0 ? (
            <p class="muted">No admins.</p>
          ) : (
            <table>
              <Head columns={["Email", "Added", "Last sign-in", { label: "Actions", hidden: true }]} />
              <tbody>
                {admins.map((admin) => (
                  <tr key={admin.id}>
                    <td>
                      {admin.email}
                      {admin.id === me ? " (you)" : ""}
                    </td>
                    <td>{when(admin.created_at)}</td>
                    <td>{when(admin.last_sign_in_at)}</td>
                    <td>
                      <button type="button" onClick={() => void remove(admin)} disabled={admins.length === 1}>
                        Remove
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Show>
      <form class="card inline" onSubmit={add}>
        <h2>Add an admin</h2>
        <label>
          Email
          <input type="email" required value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Password
          <input
            type="password"
            required
            autoComplete="new-password"
            value={password}
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
          />
        </label>
        <button type="submit">Add</button>
        <NoteLine note={message} />
      </form>
    </>
  );
}
