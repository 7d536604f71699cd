using ERCache;
using ERCache.Redis;
using ERCache.Regional;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds ERCache's regional tier on Redis or Garnet.</summary>
public static class ERCacheRedisBuilderExtensions
{
    /// <summary>
    /// Shares embeddings between the hosts of a region through Redis or Garnet. The connection is, in order:
    /// <paramref name="connectionString"/>; an <see cref="IConnectionMultiplexer"/> registered in the container (shared,
    /// not disposed by ERCache); or <c>ERCache:Regional:ConnectionString</c>. Timeouts, queue and breaker settings come
    /// from <c>ERCache:Regional</c>; a model opts out with <c>ERCache:Models:&lt;name&gt;:Regional:Enabled = false</c>.
    /// The cache starts and serves from its local tiers while the store is down, and uses it once it is reachable. Keys
    /// and channel live under <c>ERCache:Regional:KeyPrefix</c>, by default <c>ercache:&lt;application name&gt;</c>.
    /// </summary>
    /// <param name="builder">The builder from <c>AddERCache()</c>.</param>
    /// <param name="connectionString">A StackExchange.Redis connection string, such as <c>127.0.0.1:6379</c>.</param>
    /// <returns>The builder, for chaining.</returns>
    public static IERCacheBuilder AddRedisRegionalTier(this IERCacheBuilder builder, string? connectionString = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (connectionString is not null)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        }

        builder.Services.TryAddSingleton<IRegionalStore>(sp =>
        {
            string prefix = KeyPrefix(sp);
            if (connectionString is null && sp.GetService<IConnectionMultiplexer>() is { } shared)
            {
                return new RedisRegionalStore(shared, -1, prefix);
            }

            string setting = connectionString is null ? "ERCache:Regional:ConnectionString" : "the connection string passed to AddRedisRegionalTier()";
            string configured = connectionString
                ?? sp.GetRequiredService<IOptions<ERCacheOptions>>().Value.Regional?.ConnectionString
                ?? throw new InvalidOperationException(
                    "AddRedisRegionalTier() needs a connection: set ERCache:Regional:ConnectionString, pass a connection string, or register an IConnectionMultiplexer.");
            if (string.IsNullOrWhiteSpace(configured))
            {
                throw new InvalidOperationException($"{setting} must name a Redis or Garnet endpoint, such as 127.0.0.1:6379 (got '{configured}').");
            }

            try
            {
                return RedisRegionalStore.Connect(configured, sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance, prefix);
            }
            catch (Exception ex) when (ex is ArgumentException or RedisException)
            {
                throw new InvalidOperationException($"{setting} '{configured}' is not a usable StackExchange.Redis configuration: {ex.Message}", ex);
            }
        });
        return builder;
    }

    /// <summary><c>ERCache:Regional:KeyPrefix</c> (validated with the options), or <c>ercache:&lt;application
    /// name&gt;</c>: services sharing a store do not share vectors unless they choose the same prefix.</summary>
    private static string KeyPrefix(IServiceProvider sp)
    {
        if (sp.GetRequiredService<IOptions<ERCacheOptions>>().Value.Regional?.KeyPrefix is { } configured)
        {
            return configured;
        }

        string application = sp.GetService<IHostEnvironment>()?.ApplicationName is { Length: > 0 } name ? name.Replace("{", "", StringComparison.Ordinal).Replace("}", "", StringComparison.Ordinal) : string.Empty;
        string prefix = application.Length == 0 ? RedisRegionalStore.DefaultKeyPrefix : $"{RedisRegionalStore.DefaultKeyPrefix}:{application}";
        return prefix.Length <= 100 ? prefix : prefix[..100];
    }
}
