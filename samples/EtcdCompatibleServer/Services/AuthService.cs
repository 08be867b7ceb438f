using Grpc.Core;
using Etcd = EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer.Services;

/// <summary>
/// etcd's Auth service, which this server does not offer: every call answers etcd's own
/// "authentication is not enabled" (FailedPrecondition). etcd's clients treat that answer to
/// Authenticate as "go on without a token", so a client configured with a user still works.
/// </summary>
internal sealed class AuthService : Etcd.Auth.AuthBase
{
    public override Task<Etcd.AuthEnableResponse> AuthEnable(Etcd.AuthEnableRequest request, ServerCallContext context) => throw EtcdErrors.AuthNotEnabled;

    public override Task<Etcd.AuthDisableResponse> AuthDisable(Etcd.AuthDisableRequest request, ServerCallContext context) => throw EtcdErrors.AuthNotEnabled;

    public override Task<Etcd.AuthenticateResponse> Authenticate(Etcd.AuthenticateRequest request, ServerCallContext context) => throw EtcdErrors.AuthNotEnabled;

    public override Task<Etcd.AuthUserAddResponse> UserAdd(Etcd.AuthUserAddRequest request, ServerCallContext context) => throw EtcdErrors.AuthNotEnabled;

    public override Task<Etcd.AuthUserGetResponse> UserGet(Etcd.AuthUserGetRequest request, ServerCallContext context) => throw EtcdErrors.AuthNotEnabled;

    public override Task<Etcd.AuthUserListResponse> UserList(Etcd.AuthUserListRequest request, ServerCallContext context) => throw EtcdErrors.AuthNotEnabled;

    public override Task<Etcd.AuthUserDeleteResponse> UserDelete(Etcd.AuthUserDeleteRequest request, ServerCallContext context) => throw EtcdErrors.AuthNotEnabled;

    public override Task<Etcd.AuthUserChangePasswordResponse> UserChangePassword(Etcd.AuthUserChangePasswordRequest request, ServerCallContext context) => throw EtcdErrors.AuthNotEnabled;

    public override Task<Etcd.AuthUserGrantRoleResponse> UserGrantRole(Etcd.AuthUserGrantRoleRequest request, ServerCallContext context) => throw EtcdErrors.AuthNotEnabled;

    public override Task<Etcd.AuthUserRevokeRoleResponse> UserRevokeRole(Etcd.AuthUserRevokeRoleRequest request, ServerCallContext context) => throw EtcdErrors.AuthNotEnabled;

    public override Task<Etcd.AuthRoleAddResponse> RoleAdd(Etcd.AuthRoleAddRequest request, ServerCallContext context) => throw EtcdErrors.AuthNotEnabled;

    public override Task<Etcd.AuthRoleGetResponse> RoleGet(Etcd.AuthRoleGetRequest request, ServerCallContext context) => throw EtcdErrors.AuthNotEnabled;

    public override Task<Etcd.AuthRoleListResponse> RoleList(Etcd.AuthRoleListRequest request, ServerCallContext context) => throw EtcdErrors.AuthNotEnabled;

    public override Task<Etcd.AuthRoleDeleteResponse> RoleDelete(Etcd.AuthRoleDeleteRequest request, ServerCallContext context) => throw EtcdErrors.AuthNotEnabled;

    public override Task<Etcd.AuthRoleGrantPermissionResponse> RoleGrantPermission(Etcd.AuthRoleGrantPermissionRequest request, ServerCallContext context) => throw EtcdErrors.AuthNotEnabled;

    public override Task<Etcd.AuthRoleRevokePermissionResponse> RoleRevokePermission(Etcd.AuthRoleRevokePermissionRequest request, ServerCallContext context) => throw EtcdErrors.AuthNotEnabled;
}
