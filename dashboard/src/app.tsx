import { useEffect, useState } from "preact/hooks";
import { onSession, refresh, session, signOut, type Session } from "./api";
import { SignIn } from "./pages/SignIn";
import { lazy } from "./lazy";

// Every page is its own file, loaded when first shown: the sign-in page
// paints without the charts and editors the other pages bring.
const Overview = lazy(() => import("./pages/Overview").then((m) => m.Overview));
const Tables = lazy(() => import("./pages/Tables").then((m) => m.Tables));
const Sql = lazy(() => import("./pages/Sql").then((m) => m.Sql));
const Users = lazy(() => import("./pages/Users").then((m) => m.Users));
const Storage = lazy(() => import("./pages/Storage").then((m) => m.Storage));
const Functions = lazy(() => import("./pages/Functions").then((m) => m.Functions));
const Realtime = lazy(() => import("./pages/Realtime").then((m) => m.Realtime));
const Projects = lazy(() => import("./pages/Projects").then((m) => m.Projects));
const Logs = lazy(() => import("./pages/Logs").then((m) => m.Logs));
const Admins = lazy(() => import("./pages/Admins").then((m) => m.Admins));

/** The pages that exist, in the navigation's order. */
const PAGES = [
  { path: "overview", title: "Overview", view: Overview },
  { path: "tables", title: "Tables", view: Tables },
  { path: "sql", title: "SQL editor", view: Sql },
  { path: "auth", title: "Auth", view: Users },
  { path: "storage", title: "Storage", view: Storage },
  { path: "functions", title: "Functions", view: Functions },
  { path: "realtime", title: "Realtime", view: Realtime },
  { path: "projects", title: "Projects", view: Projects },
  { path: "logs", title: "Logs", view: Logs },
  { path: "admins", title: "Admins", view: Admins },
] as const;

function currentPath(): string {
  const path = location.hash.replace(/^#\/?/, "").split("/")[0];
  return PAGES.some((page) => page.path === path) ? path : "overview";
}

export function App() {
  const [signedIn, setSignedIn] = useState<Session | null>(session());
  // Until the refresh cookie has been tried: a reload keeps the session.
  const [resuming, setResuming] = useState(true);
  const [path, setPath] = useState(currentPath());

  useEffect(() => onSession(setSignedIn), []);
  useEffect(() => {
    refresh().finally(() => setResuming(false));
  }, []);
  useEffect(() => {
    const follow = () => setPath(currentPath());
    addEventListener("hashchange", follow);
    return () => removeEventListener("hashchange", follow);
  }, []);

  if (resuming) {
    return (
      <main class="center" aria-busy="true">
        <p class="muted">Loading…</p>
      </main>
    );
  }
  if (!signedIn) return <SignIn />;
  const page = PAGES.find((p) => p.path === path) ?? PAGES[0];
  const View = page.view;
  return (
    <div class="shell">
      <header class="bar">
        <span class="brand">SelfDB</span>
        <nav aria-label="Pages">
          {PAGES.map((p) => (
            <a href={`#/${p.path}`} aria-current={p.path === page.path ? "page" : undefined}>
              {p.title}
            </a>
          ))}
        </nav>
        <span class="who" data-testid="admin-email">
          {signedIn.admin.email}
        </span>
        <button type="button" onClick={() => void signOut()}>
          Sign out
        </button>
      </header>
      <main>
        <h1>{page.title}</h1>
        <View />
      </main>
    </div>
  );
}
