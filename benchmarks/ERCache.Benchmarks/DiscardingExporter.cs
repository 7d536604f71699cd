using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace ERCache.Benchmarks;

/// <summary>An OpenTelemetry exporter that drops what it is given: the benchmark measures what collecting costs a hit.</summary>
internal sealed class DiscardingExporter : BaseExporter<Metric>
{
    public override ExportResult Export(in Batch<Metric> batch) => ExportResult.Success;
}
