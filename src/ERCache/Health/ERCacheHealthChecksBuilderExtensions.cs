using ERCache.Health;
using ERCache;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the ERCache health check.</summary>
public static class ERCacheHealthChecksBuilderExtensions
{
    /// <summary>
    /// Adds <see cref="ERCacheHealthCheck"/> for the <see cref="EmbeddingCache"/> registered with <c>AddERCache()</c>:
    /// <c>Degraded</c> while a model's circuit is open or its fallback share passes the threshold.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="name">The check's name. Default <c>ercache</c>.</param>
    /// <param name="configure">Sets the thresholds.</param>
    /// <param name="tags">Tags to filter checks by (for example <c>ready</c>).</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A threshold is out of range (thrown when the check is first built).</exception>
    public static IHealthChecksBuilder AddERCache(
        this IHealthChecksBuilder builder, string name = "ercache", Action<ERCacheHealthCheckOptions>? configure = null, IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        var options = new ERCacheHealthCheckOptions();
        configure?.Invoke(options);
        options.Validate(); // at registration: a bad threshold fails where it was written
        ERCacheHealthCheck? check = null;
        var gate = new Lock();
        return builder.Add(new HealthCheckRegistration(
            name,
            sp =>
            {
                // One instance per registration: the check keeps the history its window is computed from.
                lock (gate)
                {
                    return check ??= new ERCacheHealthCheck(sp.GetRequiredService<EmbeddingCache>(), options);
                }
            },
            failureStatus: null,
            tags));
    }
}
