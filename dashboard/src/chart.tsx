import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

/** A line chart of one series over time (uPlot). */
export function TimeChart(props: { times: number[]; values: number[]; label: string; height?: number }) {
  const holder = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = holder.current;
    if (!element) return;
    const plot = new uPlot(
      {
        width: element.clientWidth || 600,
        height: props.height ?? 180,
        series: [{}, { label: props.label, stroke: "#2b6cb0", fill: "rgba(43, 108, 176, 0.12)" }],
        axes: [{}, { size: 50 }],
        legend: { show: false },
      },
      [props.times, props.values],
      element,
    );
    const resize = () => plot.setSize({ width: element.clientWidth || 600, height: props.height ?? 180 });
    addEventListener("resize", resize);
    return () => {
      removeEventListener("resize", resize);
      plot.destroy();
    };
  }, [props.times, props.values]);
  return <div class="chart" ref={holder} role="img" aria-label={props.label} />;
}
