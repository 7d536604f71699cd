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

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task Services_sharing_a_store_share_vectors_only_under_one_key_prefix(ServerKind kind)
    {
        // Two services with the same model name and version on one store: by default (their application names) they
        // share nothing; a service of the same name, or one given the other's prefix, shares.
        long user = servers.Users(1);
        var clock = new FakeTimeProvider(RegionalHost.Start);
        string connection = servers[kind].ConnectionString;
        await using var ranking = Provider(connection, clock, b => b.AddRedisRegionalTier(), application: "ranking");
        await using var ads = Provider(connection, clock, b => b.AddRedisRegionalTier(), application: "ads");
        await using var rankingAgain = Provider(connection, clock, b => b.AddRedisRegionalTier(), application: "ranking");
        await using var adsSharing = Provider(connection, clock, b => b.AddRedisRegionalTier(), application: "ads", keyPrefix: "ercache:ranking");

        var writer = ranking.GetRequiredService<IEmbeddingCache>();
        await writer.GetAsync("ctr", user, new float[RegionalHost.Dimensions]);
        await writer.FlushRegionalWritesAsync();

        Assert.Equal("ercache:ranking", ((RedisRegionalStore)ranking.GetRequiredService<IRegionalStore>()).KeyPrefix);
        Assert.Equal(EmbeddingSource.Fresh, (await ads.GetRequiredService<IEmbeddingCache>().GetAsync("ctr", user, new float[RegionalHost.Dimensions])).Source);
        Assert.Equal(EmbeddingSource.Regional, (await rankingAgain.GetRequiredService<IEmbeddingCache>().GetAsync("ctr", user, new float[RegionalHost.Dimensions])).Source);
        Assert.Equal(EmbeddingSource.Regional, (await adsSharing.GetRequiredService<IEmbeddingCache>().GetAsync("ctr", user, new float[RegionalHost.Dimensions])).Source);
        await using var admin = await ConnectionMultiplexer.ConnectAsync(connection);
        Assert.True(await admin.GetDatabase().KeyExistsAsync(RedisRegionalStore.StampsKeyOf("ercache:ranking", user)));
        Assert.False(await admin.GetDatabase().KeyExistsAsync(RedisRegionalStore.StampsKeyOf(user)));
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
        Assert.True(await multiplexer.GetDatabase().KeyExistsAsync(RedisRegionalStore.StampsKeyOf(user)));
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

    private static ServiceProvider Provider(string? connection, TimeProvider clock, Action<IERCacheBuilder> regional, string? application = null, string? keyPrefix = null)
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

        if (keyPrefix is not null)
        {
            settings["ERCache:Regional:KeyPrefix"] = keyPrefix;
        }

        var services = new ServiceCollection();
        if (application is not null)
        {
            services.AddSingleton<Microsoft.Extensions.Hosting.IHostEnvironment>(new Environment(application));
        }

        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
        services.AddSingleton(clock);
        var builder = services.AddERCache().AddModel("ctr", new UserTower());
        regional(builder);
        return services.BuildServiceProvider();
    }

    /// <summary>A host environment that names the application.</summary>
    private sealed class Environment(string application) : Microsoft.Extensions.Hosting.IHostEnvironment
    {
        public string EnvironmentName { get; set; } = "Production";

        public string ApplicationName { get; set; } = application;

        public string ContentRootPath { get; set; } = AppContext.BaseDirectory;

        public Microsoft.Extensions.FileProviders.IFileProvider ContentRootFileProvider { get; set; } = new Microsoft.Extensions.FileProviders.NullFileProvider();
    }
}
