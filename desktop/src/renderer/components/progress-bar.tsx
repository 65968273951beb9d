// A labelled progress bar; the visible fill and the accessible value say the same thing.
export function ProgressBar(props: { value: number; max: number; label: string }) {
  const fraction = props.max > 0 ? Math.min(1, Math.max(0, props.value / props.max)) : 0;
  return (
    <div
      className="progress"
      role="progressbar"
      aria-label={props.label}
      aria-valuemin={0}
      aria-valuemax={props.max}
      aria-valuenow={props.value}
    >
      <div className="progress-fill" style={{ width: `${(fraction * 100).toFixed(1)}%` }} />
    </div>
  );
}
