using ERCache.Inference;
using ERCache.Redis.Tests.Infrastructure;
using ERCache.Regional;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;

namespace ERCache.Redis.Tests;

/// <summary><c>AddRedisRegionalTier()</c>: the connection from configuration, from code, or a shared multiplexer.</summary>
public sealed class DependencyInjectionTests(SharedServers servers) : IClassFixture<SharedServers>
{
    [Fact]
    public async Task Two_services_configured_from_appsettings_share_embeddings()
    {
        long user = servers.Users(1);
        var clock = new FakeTimeProvider(RegionalHost.Start);
        await using var first = Provider(servers[ServerKind.Redis].ConnectionString, clock, builder => builder.AddRedisRegionalTier());
        await using var second = Provider(servers[ServerKind.Redis].ConnectionString, clock, builder => builder.AddRedisRegionalTier());
        var a = first.GetRequiredService<IEmbeddingCache>();
        var b = second.GetRequiredService<IEmbeddingCache>();

        await a.GetAsync("ctr", user, new float[RegionalHost.Dimensions]);
        await a.FlushRegionalWritesAsync();
        var result = await b.GetAsync("ctr", user, new float[RegionalHost.Dimensions]);

        Assert.Equal(EmbeddingSource.Regional, result.Source);
        Assert.IsType<RedisRegionalStore>(first.GetRequiredService<IRegionalStore>());
    }

    [Fact]
    public async Task A_multiplexer_registered_in_the_container_is_used_and_left_open()
    {
        long user = servers.Users(1);
        var multiplexer = await ConnectionMultiplexer.ConnectAsync(servers[ServerKind.Garnet].ConnectionString);
        var clock = new FakeTimeProvider(RegionalHost.Start);
        await using (var provider = Provider(connection: null, clock, builder =>
               {
                   builder.Services.AddSingleton<IConnectionMultiplexer>(multiplexer);
                   builder.AddRedisRegionalTier();
               }))
        {
            var cache = provider.GetRequiredService<IEmbeddingCache>();
            await cache.GetAsync("ctr", user, new float[RegionalHost.Dimensions]);
            await cache.FlushRegionalWritesAsync();
        }

        Assert.True(multiplexer.IsConnected); // the container's multiplexer belongs to the application
        Assert.True(await multiplexer.GetDatabase().KeyExistsAsync(RedisRegionalStore.KeyOf(user)));
        await multiplexer.DisposeAsync();
    }

    [Fact]
    public async Task Without_a_connection_start_up_fails_naming_the_setting()
    {
        await using var provider = Provider(connection: null, new FakeTimeProvider(), builder => builder.AddRedisRegionalTier());

        var ex = Assert.Throws<InvalidOperationException>(() => provider.GetRequiredService<IEmbeddingCache>());

        Assert.Contains("ERCache:Regional:ConnectionString", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(" ", "ERCache:Regional:ConnectionString must name a Redis or Garnet endpoint")]
    [InlineData("connectTimeout=100", "ERCache:Regional:ConnectionString 'connectTimeout=100' is not a usable StackExchange.Redis configuration")]
    public async Task A_bad_connection_string_fails_naming_the_setting_and_the_value(string connection, string message)
    {
        await using var provider = Provider(connection, new FakeTimeProvider(), builder => builder.AddRedisRegionalTier());

        var ex = Assert.Throws<InvalidOperationException>(() => provider.GetRequiredService<IEmbeddingCache>());

        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
    }

    private static ServiceProvider Provider(string? connection, TimeProvider clock, Action<IERCacheBuilder> regional)
    {
        var settings = new Dictionary<string, string?>
        {
            ["ERCache:Models:ctr:Dimensions"] = RegionalHost.Dimensions.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["ERCache:Models:ctr:Direct:Ttl"] = "00:01:00",
            ["ERCache:Models:ctr:Failover:Ttl"] = "01:00:00",
            ["ERCache:Regional:Timeout"] = "00:00:02",
        };
        if (connection is not null)
        {
            settings["ERCache:Regional:ConnectionString"] = connection;
        }

        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        services.AddSingleton(clock);
        var builder = services.AddERCache().AddModel("ctr", new UserTower());
        regional(builder);
        return services.BuildServiceProvider();
    }
}
