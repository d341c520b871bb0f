// A code editor (CodeMirror 6, only the parts used: no lint, no minimap):
// SQL with completion of the schema's tables and columns, or TypeScript;
// Mod-Enter to run, and a mark on the place an error names.
import { useEffect, useRef } from "preact/hooks";
import { Compartment, EditorState, StateEffect, StateField, type Extension } from "@codemirror/state";
import {
  EditorView,
  Decoration,
  type DecorationSet,
  keymap,
  lineNumbers,
  highlightActiveLine,
  drawSelection,
} from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { syntaxHighlighting, defaultHighlightStyle, bracketMatching } from "@codemirror/language";
import { autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
import { sql, PostgreSQL } from "@codemirror/lang-sql";
import { javascript } from "@codemirror/lang-javascript";

/** What the page can ask of the editor. */
export interface EditorHandle {
  /** The selected text, or all of it when nothing is selected. */
  runnable(): { text: string; offset: number };
  /** Marks the error at a 0-based character offset and puts the cursor there. */
  markError(offset: number | null): void;
  /** Marks line `line`, column `column` (both from 1), as a compiler names them. */
  markAt(line: number, column: number): void;
  text(): string;
  setText(text: string): void;
}

const setError = StateEffect.define<number | null>();
const errorMark = Decoration.mark({ class: "cm-error-mark" });
const errorField = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(marks, tr) {
    marks = marks.map(tr.changes);
    for (const effect of tr.effects) {
      if (!effect.is(setError)) continue;
      if (effect.value === null) {
        marks = Decoration.none;
        continue;
      }
      const doc = tr.state.doc;
      const from = Math.min(effect.value, doc.length);
      // The word the error starts at, or one character.
      const word = tr.state.wordAt(from);
      const to = word && word.from === from ? word.to : Math.min(from + 1, doc.length);
      marks = to > from ? Decoration.set([errorMark.range(from, to)]) : Decoration.none;
    }
    // Typing clears the mark: it named the text as it was.
    return tr.docChanged ? Decoration.none : marks;
  },
  provide: (field) => EditorView.decorations.from(field),
});

/** The page's styles do not reach into the shadow root: the editor's own. */
const theme = EditorView.theme({
  "&": { minHeight: "12rem", maxHeight: "50vh", fontSize: "0.9rem", backgroundColor: "var(--card)", color: "var(--fg)" },
  "&.cm-focused": { outline: "2px solid var(--accent)" },
  ".cm-scroller": { fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, monospace' },
  ".cm-gutters": { backgroundColor: "var(--bg)", color: "var(--muted)", borderRight: "1px solid var(--line)" },
  ".cm-error-mark": { textDecoration: "wavy underline var(--error)", backgroundColor: "rgba(180, 35, 24, 0.12)" },
});

/** JavaScript counts UTF-16 units; PostgreSQL counts characters. */
export function unitsOf(text: string, characters: number): number {
  let units = 0;
  let seen = 0;
  for (const ch of text) {
    if (seen === characters) break;
    units += ch.length;
    seen++;
  }
  return units;
}

function languageOf(language: "sql" | "typescript", schema: Record<string, string[]> | undefined): Extension {
  return language === "sql"
    ? sql({ dialect: PostgreSQL, schema: schema ?? {}, upperCaseKeywords: false })
    : javascript({ typescript: true });
}

export function Editor(props: {
  initial: string;
  label: string;
  /** SQL (the default) or TypeScript, which also reads JavaScript. */
  language?: "sql" | "typescript";
  onChange?: (text: string) => void;
  onRun?: () => void;
  /** Table name → column names, for completion. */
  schema?: Record<string, string[]>;
  handle: { current: EditorHandle | null };
}) {
  const holder = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  // The SQL language, swapped when the schema for completion arrives (a
  // new state would lose the text and its history).
  const language = useRef(new Compartment());
  const latest = useRef(props);
  latest.current = props;

  useEffect(() => {
    const element = holder.current;
    if (!element) return;
    const run = () => {
      latest.current.onRun?.();
      return true;
    };
    const extensions: Extension[] = [
      lineNumbers(),
      history(),
      drawSelection(),
      highlightActiveLine(),
      bracketMatching(),
      closeBrackets(),
      autocompletion(),
      highlightSelectionMatches(),
      syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
      language.current.of(languageOf(props.language ?? "sql", props.schema)),
      errorField,
      keymap.of([
        { key: "Mod-Enter", run, preventDefault: true },
        ...closeBracketsKeymap,
        ...defaultKeymap,
        ...historyKeymap,
        ...searchKeymap,
        ...completionKeymap,
        indentWithTab,
      ]),
      EditorView.updateListener.of((update) => {
        if (update.docChanged) latest.current.onChange?.(update.state.doc.toString());
      }),
      EditorView.contentAttributes.of({ "aria-label": props.label }),
      // Text typed over a selection is put in by CodeMirror, not left to
      // the browser: Chrome's own editing, merging the lines it deletes,
      // writes style attributes, which the CSP (rightly) refuses.
      EditorView.domEventHandlers({
        beforeinput(event, view) {
          if (event.inputType !== "insertText" || !event.data || view.state.selection.main.empty) return false;
          event.preventDefault();
          view.dispatch(view.state.update(view.state.replaceSelection(event.data), { scrollIntoView: true, userEvent: "input.type" }));
          return true;
        },
      }),
    ];
    // In a shadow root, CodeMirror's styles go in through constructed
    // style sheets, which the host's Content-Security-Policy (no inline
    // styles) allows; in the document they would be a <style> element.
    const shadow = element.shadowRoot ?? element.attachShadow({ mode: "open" });
    const mount = document.createElement("div");
    shadow.appendChild(mount);
    const editor = new EditorView({
      state: EditorState.create({ doc: props.initial, extensions: [...extensions, theme] }),
      parent: mount,
      root: shadow,
    });
    view.current = editor;
    props.handle.current = {
      runnable() {
        const { from, to } = editor.state.selection.main;
        const doc = editor.state.doc.toString();
        return from === to ? { text: doc, offset: 0 } : { text: doc.slice(from, to), offset: from };
      },
      markError(offset) {
        editor.dispatch({
          effects: setError.of(offset),
          selection: offset === null ? undefined : { anchor: Math.min(offset, editor.state.doc.length) },
          scrollIntoView: offset !== null,
        });
      },
      markAt(line, column) {
        const doc = editor.state.doc;
        if (line < 1 || line > doc.lines) return;
        const at = doc.line(line);
        this.markError(Math.min(at.from + Math.max(column - 1, 0), at.to));
      },
      text() {
        return editor.state.doc.toString();
      },
      setText(text) {
        editor.dispatch({ changes: { from: 0, to: editor.state.doc.length, insert: text } });
      },
    };
    return () => {
      editor.destroy();
      mount.remove();
      view.current = null;
      props.handle.current = null;
    };
  }, []);

  useEffect(() => {
    view.current?.dispatch({ effects: language.current.reconfigure(languageOf(props.language ?? "sql", props.schema)) });
  }, [props.schema]);

  return <div class="editor" ref={holder} />;
}
