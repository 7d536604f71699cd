namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Chains per-model registrations after <c>AddERCache</c>.</summary>
public interface IERCacheBuilder
{
    /// <summary>The service collection ERCache was added to.</summary>
    IServiceCollection Services { get; }
}
