// A grid of query results: a header of names and types, and cells that
// show NULL apart from the empty string and JSON as JSON.

export interface GridColumn {
  name: string;
  type: string;
}

const NUMERIC = /^(int[248]|float[48]|numeric|oid|money)/;

function cell(value: unknown): { text: string; null: boolean } {
  if (value === null || value === undefined) return { text: "NULL", null: true };
  if (typeof value === "object") return { text: JSON.stringify(value), null: false };
  return { text: String(value), null: false };
}

export function Grid(props: { columns: GridColumn[]; rows: unknown[][]; label: string }) {
  const numeric = props.columns.map((c) => NUMERIC.test(c.type));
  return (
    <div class="grid" role="region" aria-label={props.label} tabIndex={0}>
      <table>
        <thead>
          <tr>
            {props.columns.map((c) => (
              <th scope="col" title={c.type}>
                {c.name} <span class="type">{c.type}</span>
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.rows.map((row) => (
            <tr>
              {row.map((value, i) => {
                const shown = cell(value);
                return (
                  <td class={[numeric[i] ? "num" : "", shown.null ? "null" : ""].join(" ").trim() || undefined}>
                    {shown.text}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
